import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MkportableError } from '../errors.js';
import {
  EXEC_KEYS,
  SOCKET_EXEC_KEYS,
  hasSpecifiers,
  parseExecCommands,
  parseExecLine,
  parseUnitFile,
  serviceEnvironment,
  splitWords,
  unitEntries,
  unitValues,
} from './unitfile.js';

/** Assert that fn throws a MkportableError with this code whose message matches. */
function throwsCode(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof MkportableError, `expected MkportableError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, message);
    return true;
  });
}

describe('parseUnitFile', () => {
  it('reads sections, keys and values with whitespace trimmed', () => {
    const unit = parseUnitFile(
      '[Unit]\nDescription = Demo  service \n\n[Service]\n  ExecStart=/usr/bin/demo --flag\nRestart=always\n',
      'demo.service',
    );
    assert.deepEqual(unit, {
      sections: [
        { name: 'Unit', entries: [{ key: 'Description', value: 'Demo  service', line: 2 }] },
        {
          name: 'Service',
          entries: [
            { key: 'ExecStart', value: '/usr/bin/demo --flag', line: 5 },
            { key: 'Restart', value: 'always', line: 6 },
          ],
        },
      ],
    });
  });

  it('skips comments starting with # or ; (also indented) and blank lines', () => {
    const unit = parseUnitFile('# header\n; other\n[Service]\n   # indented\n\t; tab\nType=simple\n\n', 'x.service');
    assert.deepEqual(unitValues(unit, 'Service', 'Type'), ['simple']);
    assert.equal(unit.sections[0].entries.length, 1);
  });

  it('keeps # and ; inside values', () => {
    const unit = parseUnitFile('[Service]\nExecStart=/bin/sh -c "a; b # c"\n', 'x.service');
    assert.deepEqual(unitValues(unit, 'Service', 'ExecStart'), ['/bin/sh -c "a; b # c"']);
  });

  it('joins continued lines with a space, recording the first line', () => {
    const unit = parseUnitFile('[Service]\nExecStart=/usr/bin/foo \\\n  --a \\\n  --b\nType=oneshot\n', 'x.service');
    assert.deepEqual(unitEntries(unit, 'Service', 'ExecStart'), [{ key: 'ExecStart', value: '/usr/bin/foo    --a    --b', line: 2 }]);
    assert.deepEqual(unitEntries(unit, 'Service', 'Type'), [{ key: 'Type', value: 'oneshot', line: 5 }]);
    assert.deepEqual(parseExecLine(unitValues(unit, 'Service', 'ExecStart')[0])?.argv, ['/usr/bin/foo', '--a', '--b']);
  });

  it("joins a continuation with one space and no surrounding whitespace (systemd's parser rule)", () => {
    const unit = parseUnitFile('[Service]\nEnvironment=A=1\\\nB=2\n', 'x.service');
    assert.deepEqual(unitValues(unit, 'Service', 'Environment'), ['A=1 B=2']);
  });

  it('skips comment lines inside a continuation', () => {
    const unit = parseUnitFile(
      '[Service]\nExecStart=/usr/bin/foo \\\n# --disabled \\\n  ; also a comment\n  --enabled\n',
      'x.service',
    );
    assert.deepEqual(unitValues(unit, 'Service', 'ExecStart'), ['/usr/bin/foo    --enabled']);
  });

  it('ends a continuation at a blank line', () => {
    const unit = parseUnitFile('[Service]\nExecStart=/bin/a \\\n\nType=simple\n', 'x.service');
    assert.deepEqual(unitValues(unit, 'Service', 'ExecStart'), ['/bin/a']);
    assert.deepEqual(unitValues(unit, 'Service', 'Type'), ['simple']);
  });

  it('treats a doubled trailing backslash as a literal backslash, not a continuation', () => {
    const unit = parseUnitFile('[Service]\nEnvironment=P=C:\\\\\nType=simple\n', 'x.service');
    assert.deepEqual(unitValues(unit, 'Service', 'Environment'), ['P=C:\\\\']);
    assert.deepEqual(unitValues(unit, 'Service', 'Type'), ['simple']);
  });

  it('finishes a continuation left open at the end of the file', () => {
    const unit = parseUnitFile('[Service]\nExecStart=/bin/a \\', 'x.service');
    assert.deepEqual(unitValues(unit, 'Service', 'ExecStart'), ['/bin/a']);
  });

  it('accepts CRLF line ends and a byte order mark', () => {
    const unit = parseUnitFile('\uFEFF[Service]\r\nExecStart=/bin/a\r\nType=simple\r\n', 'x.service');
    assert.deepEqual(unitValues(unit, 'Service', 'ExecStart'), ['/bin/a']);
    assert.deepEqual(unitValues(unit, 'Service', 'Type'), ['simple']);
  });

  it('keeps everything after the first = in the value', () => {
    const unit = parseUnitFile('[Service]\nEnvironment=A=b=c\n', 'x.service');
    assert.deepEqual(unitValues(unit, 'Service', 'Environment'), ['A=b=c']);
  });

  it('merges a repeated section header into one section', () => {
    const unit = parseUnitFile('[Service]\nExecStartPre=/bin/a\n[Unit]\nDescription=x\n[Service]\nExecStartPre=/bin/b\n', 'x.service');
    assert.deepEqual(unit.sections.map((s) => s.name), ['Service', 'Unit']);
    assert.deepEqual(unitValues(unit, 'Service', 'ExecStartPre'), ['/bin/a', '/bin/b']);
  });

  it('parses the example units of this repository', () => {
    const demo = parseUnitFile(
      "[Unit]\nDescription=Demo portable service\nRequires=demo.socket\nAfter=demo.socket\n\n[Service]\nExecStart=/bin/sh -c 'while true; do date; sleep 5; done'\nRestart=always\n",
      'demo.service',
    );
    assert.deepEqual(parseExecLine(unitValues(demo, 'Service', 'ExecStart')[0]), {
      prefixes: '',
      executable: '/bin/sh',
      argv: ['/bin/sh', '-c', 'while true; do date; sleep 5; done'],
      hasSpecifier: false,
    });
  });

  describe('refuses broken lines with file name and line number', () => {
    const cases: [string, string, RegExp][] = [
      ['assignment before any section', 'ExecStart=/bin/a\n', /^x\.service:1: assignment outside of a section: 'ExecStart=\/bin\/a'$/],
      ['line without =', '[Service]\nExecStart /bin/a\n', /^x\.service:2: missing '=' in 'ExecStart \/bin\/a'$/],
      ['empty key', '[Service]\n\n\n = value\n', /^x\.service:4: missing key name before '='/],
      ['unclosed section header', '[Unit]\nA=b\n[Service\n', /^x\.service:3: invalid section header '\[Service'$/],
      ['text after a section header', '[Service] # comment\n', /^x\.service:1: invalid section header/],
      ['empty section name', '[]\n', /^x\.service:1: invalid section header '\[\]'$/],
      ['.include', '[Unit]\n.include /etc/foo.service\n', /^x\.service:2: '\.include' is not supported/],
      ['bad line after a continuation', '[Service]\nExecStart=/bin/a \\\n  --b\nnonsense\n', /^x\.service:4: missing '='/],
    ];
    for (const [what, text, message] of cases) {
      it(what, () => throwsCode(() => parseUnitFile(text, 'x.service'), 'UNIT_INVALID', message));
    }

    it('names the file as the error subject', () => {
      try {
        parseUnitFile('junk\n', '/etc/systemd/system/a.service');
        assert.fail('no error');
      } catch (e) {
        assert.ok(e instanceof MkportableError);
        assert.equal(e.subject, '/etc/systemd/system/a.service');
        assert.match(e.message, /^\/etc\/systemd\/system\/a\.service:1: /);
      }
    });
  });
});

describe('unitValues', () => {
  const unit = parseUnitFile(
    [
      '[Service]',
      'ExecStartPre=/bin/one',
      'ExecStartPre=/bin/two',
      'ExecStartPre=',
      'ExecStartPre=/bin/three',
      'ExecStartPre=/bin/four',
      '[Install]',
      'ExecStartPre=/not/a/service/setting',
    ].join('\n'),
    'x.service',
  );

  it('lists values in order after the last empty assignment', () => {
    assert.deepEqual(unitValues(unit, 'Service', 'ExecStartPre'), ['/bin/three', '/bin/four']);
  });

  it('reads only the requested section and key', () => {
    assert.deepEqual(unitValues(unit, 'Install', 'ExecStartPre'), ['/not/a/service/setting']);
    assert.deepEqual(unitValues(unit, 'Service', 'ExecStart'), []);
    assert.deepEqual(unitValues(unit, 'Socket', 'ExecStartPre'), []);
  });

  it("matches section and key names case-sensitively (systemd's parser rule)", () => {
    assert.deepEqual(unitValues(unit, 'service', 'ExecStartPre'), []);
    assert.deepEqual(unitValues(unit, 'Service', 'execstartpre'), []);
  });

  it('gives an empty list when the last assignment is empty', () => {
    const u = parseUnitFile('[Service]\nExecStop=/bin/a\nExecStop=\n', 'x.service');
    assert.deepEqual(unitValues(u, 'Service', 'ExecStop'), []);
  });

  it('keeps line numbers in unitEntries', () => {
    assert.deepEqual(unitEntries(unit, 'Service', 'ExecStartPre').map((e) => e.line), [5, 6]);
  });
});

describe('EXEC_KEYS', () => {
  it('lists the service command settings', () => {
    assert.deepEqual(
      [...EXEC_KEYS],
      ['ExecStart', 'ExecStartPre', 'ExecStartPost', 'ExecReload', 'ExecStop', 'ExecStopPost', 'ExecCondition'],
    );
    assert.deepEqual([...SOCKET_EXEC_KEYS], ['ExecStartPre', 'ExecStartPost', 'ExecStopPre', 'ExecStopPost']);
  });
});

describe('parseExecLine', () => {
  const plain = (executable: string, argv: string[], prefixes = '') => ({ prefixes, executable, argv, hasSpecifier: false });

  const accepted: [string, ReturnType<typeof plain>][] = [
    ['/usr/bin/foo', plain('/usr/bin/foo', ['/usr/bin/foo'])],
    ['-/usr/bin/foo --bar "a b"', plain('/usr/bin/foo', ['/usr/bin/foo', '--bar', 'a b'], '-')],
    ['@/usr/bin/sleep sleep 10', plain('/usr/bin/sleep', ['sleep', '10'], '@')],
    ['@/usr/bin/sleep my-sleeper 10', plain('/usr/bin/sleep', ['my-sleeper', '10'], '@')],
    ["/bin/sh -c 'while true; do date; sleep 5; done'", plain('/bin/sh', ['/bin/sh', '-c', 'while true; do date; sleep 5; done'])],
    ['sleep 10', plain('sleep', ['sleep', '10'])],
    ['-sleep 10', plain('sleep', ['sleep', '10'], '-')],
    ['+/usr/bin/true', plain('/usr/bin/true', ['/usr/bin/true'], '+')],
    ['!/usr/bin/true', plain('/usr/bin/true', ['/usr/bin/true'], '!')],
    ['!!/usr/bin/true', plain('/usr/bin/true', ['/usr/bin/true'], '!!')],
    [':/bin/echo $USER', plain('/bin/echo', ['/bin/echo', '$USER'], ':')],
    ['-@:+/bin/x y', plain('/bin/x', ['y'], '-@:+')],
    ['+:@true $TEST', plain('true', ['$TEST'], '+:@')],
    ['@-!!/bin/x y z', plain('/bin/x', ['y', 'z'], '@-!!')],
    ['   /bin/true   ', plain('/bin/true', ['/bin/true'])],
    ['/bin/echo\tone  two', plain('/bin/echo', ['/bin/echo', 'one', 'two'])],
    // Quoting: quotes can start mid-word and are joined; both quote kinds understand C escapes.
    ['/bin/echo a"b c"d \'e f\'', plain('/bin/echo', ['/bin/echo', 'ab cd', 'e f'])],
    ['/bin/echo "" \'\'', plain('/bin/echo', ['/bin/echo', '', ''])],
    ['/bin/echo "say \\"hi\\"" \'it\\\'s\'', plain('/bin/echo', ['/bin/echo', 'say "hi"', "it's"])],
    ['"/opt/my app/bin/run" --x', plain('/opt/my app/bin/run', ['/opt/my app/bin/run', '--x'])],
    ['/bin/printf a\\nb\\tc \'d\\ne\'', plain('/bin/printf', ['/bin/printf', 'a\nb\tc', 'd\ne'])],
    ['/bin/echo \\x41\\x42 \\101 \\u00e9 \\U0001F600 \\xc3\\xa9', plain('/bin/echo', ['/bin/echo', 'AB', 'A', 'é', '😀', 'é'])],
    ['/bin/echo a\\\\b a\\sb', plain('/bin/echo', ['/bin/echo', 'a\\b', 'a b'])],
    // Unknown escapes are kept verbatim (systemd warns "Ignoring unknown escape sequences").
    ['/bin/sh -c "echo \\$HOME"', plain('/bin/sh', ['/bin/sh', '-c', 'echo \\$HOME'])],
    ['/bin/echo \\x4g', plain('/bin/echo', ['/bin/echo', '\\x4g'])],
    // `\;` is a literal ";" argument; a quoted ";" stays an argument too.
    ['/usr/bin/find / -name x -exec rm {} \\;', plain('/usr/bin/find', ['/usr/bin/find', '/', '-name', 'x', '-exec', 'rm', '{}', ';'])],
    ['/bin/echo ";"', plain('/bin/echo', ['/bin/echo', ';'])],
    ['/bin/echo a;b', plain('/bin/echo', ['/bin/echo', 'a;b'])],
    ['/bin/echo / >/dev/null & \\; ls', plain('/bin/echo', ['/bin/echo', '/', '>/dev/null', '&', ';', 'ls'])],
    // Shell operators are plain words.
    ['/bin/echo $FOO ${BAR} | tee x', plain('/bin/echo', ['/bin/echo', '$FOO', '${BAR}', '|', 'tee', 'x'])],
    // systemd's path_simplify() on the executable; argv[0] stays as written.
    ['/usr//bin/./env FOO=1 /bin/x', plain('/usr/bin/env', ['/usr//bin/./env', 'FOO=1', '/bin/x'])],
    ['/usr/bin/../bin/env', plain('/usr/bin/../bin/env', ['/usr/bin/../bin/env'])],
    // `%%` is a literal percent.
    ['/opt/100%%/run 50%%', plain('/opt/100%/run', ['/opt/100%/run', '50%'])],
    ['/bin/echo 100%', plain('/bin/echo', ['/bin/echo', '100%'])],
  ];
  for (const [value, expected] of accepted) {
    it(`parses ${value}`, () => assert.deepEqual(parseExecLine(value), expected));
  }

  it('returns null for an empty or blank value', () => {
    assert.equal(parseExecLine(''), null);
    assert.equal(parseExecLine('   \t'), null);
  });

  it('flags specifiers in the executable and leaves them unexpanded', () => {
    assert.deepEqual(parseExecLine('%h/bin/tool --config %E/tool.conf 100%%'), {
      prefixes: '',
      executable: '%h/bin/tool',
      argv: ['%h/bin/tool', '--config', '%E/tool.conf', '100%'],
      hasSpecifier: true,
    });
    assert.equal(parseExecLine('/usr/lib/%p/run')?.hasSpecifier, true);
    assert.equal(parseExecLine('-/usr/bin/foo --user %u')?.hasSpecifier, false);
    assert.equal(parseExecLine('@/usr/bin/foo %n')?.hasSpecifier, false);
  });

  it('supports the `|` prefix of systemd 258 (run via the login shell)', () => {
    assert.deepEqual(parseExecLine('|echo hi'), plain('echo', ['echo', 'hi'], '|'));
    // With `|`, `@` asks for a login shell instead of taking argv[0] from the next word.
    assert.deepEqual(parseExecLine('@|echo hi'), plain('echo', ['echo', 'hi'], '@|'));
    assert.deepEqual(parseExecLine('|'), plain('', [], '|'));
  });

  describe('refuses what systemd refuses', () => {
    const refused: [string, RegExp][] = [
      ['+!/bin/true', /executable '!\/bin\/true' is neither an absolute path nor a bare file name/], // + and ! exclude each other
      ['!+/bin/true', /executable '\+\/bin\/true'/],
      ['--/bin/true', /executable '-\/bin\/true'/], // each prefix at most once
      ['!!!/bin/true', /executable '!\/bin\/true'/],
      ['bin/true', /neither an absolute path nor a bare file name/],
      ['./run', /neither an absolute path nor a bare file name/],
      ['..', /neither an absolute path nor a bare file name/],
      ['/usr/bin/', /names a directory/],
      ['-', /empty executable/],
      ['@-', /empty executable/],
      ['@/usr/bin/sleep', /'@' needs a second word/],
      ['"/bin/echo', /unbalanced quoting/],
      ["/bin/echo 'a b", /unbalanced quoting/],
      ['/bin/echo "a\\', /unbalanced quoting/],
      ['"/bin/e\\"cho"', /contains quotes, backslashes or control characters/],
      ['/bin/x\\ty', /contains quotes, backslashes or control characters/],
      ['/bin/echo \\xff', /invalid UTF-8/],
    ];
    for (const [value, message] of refused) {
      it(value, () => throwsCode(() => parseExecLine(value), 'UNIT_INVALID', message));
    }

    it('writes control characters of the value as escapes, keeping the message on one line', () => {
      throwsCode(() => parseExecLine('"/bin/x\nmore'), 'UNIT_INVALID', /^invalid command line '"\/bin\/x\\nmore': unbalanced quoting$/);
    });

    it('prefixes the message with `where` and uses it as the subject', () => {
      try {
        parseExecLine('"/bin/x', 'demo.service:7');
        assert.fail('no error');
      } catch (e) {
        assert.ok(e instanceof MkportableError);
        assert.equal(e.message, `demo.service:7: invalid command line '"/bin/x': unbalanced quoting`);
        assert.equal(e.subject, 'demo.service:7');
      }
    });
  });
});

describe('parseExecCommands', () => {
  it('returns every command of a value using the old lone-";" separator', () => {
    const cmds = parseExecCommands('/bin/a 1 ; -/bin/b "2 3" ; @/bin/c c0');
    assert.deepEqual(
      cmds.map((c) => [c.prefixes, c.executable, c.argv]),
      [
        ['', '/bin/a', ['/bin/a', '1']],
        ['-', '/bin/b', ['/bin/b', '2 3']],
        ['@', '/bin/c', ['c0']],
      ],
    );
    assert.equal(parseExecLine('/bin/a 1 ; /bin/b')?.executable, '/bin/a');
  });

  it('ignores empty commands around separators', () => {
    assert.deepEqual(parseExecCommands('; /bin/a ;').map((c) => c.executable), ['/bin/a']);
    assert.deepEqual(parseExecCommands(';'), []);
    assert.deepEqual(parseExecCommands(''), []);
  });
});

describe('splitWords and hasSpecifiers', () => {
  it('splits with systemd quoting', () => {
    assert.deepEqual(splitWords(` a  "b c"\t'd'e \\x41 `), ['a', 'b c', 'de', 'A']);
    assert.deepEqual(splitWords(''), []);
  });

  it('finds specifiers but not %% or a final %', () => {
    assert.equal(hasSpecifiers('%h'), true);
    assert.equal(hasSpecifiers('a%%b'), false);
    assert.equal(hasSpecifiers('100%'), false);
    assert.equal(hasSpecifiers('%%%i'), true);
    assert.equal(hasSpecifiers('%%%%'), false);
  });
});

describe('serviceEnvironment', () => {
  const env = (body: string) => serviceEnvironment(parseUnitFile(`[Service]\n${body}\n`, 'x.service'));

  it('reads quoted and unquoted assignments, later ones overriding', () => {
    const e = env(
      [
        'Environment=ONE=one "TWO=two two" \'THREE=3\'',
        'Environment=FOUR=a=b EMPTY=',
        'Environment=ONE=uno',
        'Environment="PATH=/opt/bin:/usr/bin" LANG=C.UTF-8',
      ].join('\n'),
    );
    assert.deepEqual(
      [...e].sort(),
      [
        ['EMPTY', ''],
        ['FOUR', 'a=b'],
        ['LANG', 'C.UTF-8'],
        ['ONE', 'uno'],
        ['PATH', '/opt/bin:/usr/bin'],
        ['THREE', '3'],
        ['TWO', 'two two'],
      ],
    );
  });

  it('follows the example of systemd.service(5)', () => {
    const e = env(`Environment=ONE='one' "TWO='two two' too" THREE=`);
    assert.deepEqual([...e], [
      ['ONE', 'one'],
      ['TWO', "'two two' too"],
      ['THREE', ''],
    ]);
  });

  it('unescapes C escapes in values', () => {
    assert.equal(env('Environment="MSG=a\\tb\\x41"').get('MSG'), 'a\tbA');
  });

  it('is cleared by an empty Environment=', () => {
    const e = env('Environment=A=1 B=2\nEnvironment=\nEnvironment=C=3');
    assert.deepEqual([...e], [['C', '3']]);
  });

  it("drops invalid words and a whole assignment with an unbalanced quote, keeping the rest (systemd's Environment= rule)", () => {
    const e = env(['Environment=GOOD=1 noequals =x 1BAD=2 BAD-NAME=3', 'Environment="BROKEN=1 OTHER=2', 'Environment=LAST=ok'].join('\n'));
    assert.deepEqual([...e], [
      ['GOOD', '1'],
      ['LAST', 'ok'],
    ]);
  });

  it('reads only [Service]', () => {
    const e = serviceEnvironment(parseUnitFile('[Unit]\nEnvironment=A=1\n[Socket]\nEnvironment=B=2\n', 'x.socket'));
    assert.equal(e.size, 0);
  });
});
