import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MkportableError } from '../errors.js';
import { parseOsRelease, quoteOsReleaseValue, renderOsRelease } from './osrelease.js';

const SH = '/bin/sh';
const hasSh = existsSync(SH);

/** What a POSIX shell sees after sourcing `text`: the values of `keys`. */
function sourceWithShell(text: string, keys: string[]): Map<string, string> {
  const dir = mkdtempSync(join(tmpdir(), 'mkportable-osrelease-'));
  try {
    const file = join(dir, 'os-release');
    writeFileSync(file, text);
    const script = `. "$1" || exit 1; printf '%s\\0' ${keys.map((k) => `"\${${k}-}"`).join(' ')}`;
    const out = execFileSync(SH, ['-c', script, 'sh', file], { env: {}, encoding: 'utf8' });
    const values = out.split('\0').slice(0, -1);
    return new Map(keys.map((k, i) => [k, values[i]]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function throwsConfig(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof MkportableError);
    assert.equal(e.code, 'CONFIG_INVALID');
    assert.match(e.message, message);
    return true;
  });
}

const TRICKY: [string, string][] = [
  ['ID', 'demo'],
  ['VERSION_ID', '1.2.3-rc1+git.abc'],
  ['HOME_URL', 'https://example.org/a/b?x=1&y=%20'],
  ['PRETTY_NAME', 'Demo Linux 1.0 (Portable)'],
  ['QUOTES', `He said "hi" and 'bye'`],
  ['DOLLAR', '$HOME ${PATH} $(id) $$'],
  ['BACKTICK', '`uname -a`'],
  ['BACKSLASH', 'C:\\Temp\\ \\n \\\\ trailing\\'],
  ['UNICODE', 'Ünïcödé — 日本語 😀'],
  ['EQUALS', 'a=b=c'],
  ['HASH', '#not-a-comment'],
  ['SEMI', 'a;b&c|d<e>f(g)'],
  ['SPACES', '  leading and trailing  '],
  ['TILDE', '~root'],
  ['STAR', '*'],
  ['EMPTY', ''],
  ['A1_2', 'x'],
];

describe('renderOsRelease', () => {
  it('writes one KEY=value per line, quoting only when needed', () => {
    assert.equal(
      renderOsRelease([
        ['NAME', 'Demo Linux'],
        ['ID', 'demo'],
        ['VERSION_ID', '1.0'],
        ['HOME_URL', 'https://example.org/'],
        ['PORTABLE_PREFIXES', 'demo'],
      ]),
      'NAME="Demo Linux"\nID=demo\nVERSION_ID=1.0\nHOME_URL=https://example.org/\nPORTABLE_PREFIXES=demo\n',
    );
  });

  it('accepts a record and keeps its order', () => {
    assert.equal(renderOsRelease({ ID: 'demo', NAME: 'Demo' }), 'ID=demo\nNAME=Demo\n');
  });

  it('renders an empty value as KEY=""', () => {
    assert.equal(renderOsRelease({ VARIANT: '' }), 'VARIANT=""\n');
  });

  it('renders nothing for no fields', () => {
    assert.equal(renderOsRelease([]), '');
  });

  it('escapes backslash, double quote, dollar and backtick inside double quotes', () => {
    assert.equal(quoteOsReleaseValue('a\\b"c$d`e'), '"a\\\\b\\"c\\$d\\`e"');
    assert.equal(quoteOsReleaseValue("it's"), `"it's"`);
    assert.equal(quoteOsReleaseValue('a-b.c_d+e:f/g@h%i'), 'a-b.c_d+e:f/g@h%i');
    assert.equal(quoteOsReleaseValue('a=b'), '"a=b"');
    assert.equal(quoteOsReleaseValue('~x'), '"~x"');
  });

  it('refuses keys outside [A-Z][A-Z0-9_]*, naming the key', () => {
    for (const key of ['name', 'Name', '1ID', '_ID', 'ID-LIKE', 'ID LIKE', '', 'ÄB']) {
      throwsConfig(() => renderOsRelease([[key, 'x']]), new RegExp(`^os-release key '${key}' is invalid`));
    }
  });

  it('refuses newlines and other control characters in values', () => {
    throwsConfig(() => renderOsRelease({ NAME: 'a\nb' }), /^os-release value of NAME contains a newline$/);
    throwsConfig(() => renderOsRelease({ NAME: 'a\tb' }), /contains control character U\+0009/);
    throwsConfig(() => renderOsRelease({ NAME: 'a\rb' }), /U\+000D/);
    throwsConfig(() => renderOsRelease({ NAME: '\x7f' }), /U\+007F/);
    throwsConfig(() => renderOsRelease({ NAME: 'a\0' }), /U\+0000/);
  });

  it('keeps messages on one line even for keys with control characters', () => {
    throwsConfig(() => renderOsRelease([['A\nB', 'x']]), /^os-release key 'A\\nB' is invalid/);
  });

  it('refuses lone surrogates and duplicate keys', () => {
    throwsConfig(() => renderOsRelease({ NAME: 'a\uD800b' }), /not valid Unicode/);
    throwsConfig(() => renderOsRelease([['ID', 'a'], ['ID', 'b']]), /'ID' is given twice/);
  });

  it('round-trips tricky values through parseOsRelease', () => {
    const parsed = parseOsRelease(renderOsRelease(TRICKY));
    assert.deepEqual(parsed.problems, []);
    assert.deepEqual([...parsed.fields], TRICKY);
  });

  it('round-trips every printable ASCII character and a long value', () => {
    const ascii = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i)).join('');
    const fields: [string, string][] = [
      ['ASCII', ascii],
      ['LONG', 'x y '.repeat(5000)],
    ];
    for (const c of ascii) fields.push([`C${c.charCodeAt(0)}`, c]);
    const parsed = parseOsRelease(renderOsRelease(fields));
    assert.deepEqual(parsed.problems, []);
    assert.deepEqual([...parsed.fields], fields);
  });

  it('is read identically by a POSIX shell', { skip: !hasSh && `${SH} not found` }, () => {
    const text = renderOsRelease(TRICKY);
    assert.deepEqual(sourceWithShell(text, TRICKY.map(([k]) => k)), new Map(TRICKY));
  });
});

describe('parseOsRelease', () => {
  const parse = (text: string) => parseOsRelease(text);
  const fields = (text: string) => Object.fromEntries(parse(text).fields);

  it('reads bare, double-quoted and single-quoted values', () => {
    assert.deepEqual(fields(`A=bare\nB="double quoted"\nC='single quoted'\n`), {
      A: 'bare',
      B: 'double quoted',
      C: 'single quoted',
    });
  });

  it('skips comments and blank lines', () => {
    const r = parse('# comment\n\n   \nID=x\n  # indented comment\nNAME=y # not a comment in systemd\n');
    assert.deepEqual(Object.fromEntries(r.fields), { ID: 'x', NAME: 'y # not a comment in systemd' });
    assert.equal(r.problems.length, 1); // the shell would read that comment differently
  });

  it('unescapes like a shell inside double quotes, and keeps other backslashes', () => {
    assert.equal(fields(String.raw`A="\"\\\$\`"`).A, '"\\$`');
    assert.equal(fields(String.raw`C="\n\a"`).C, '\\n\\a');
  });

  it('treats backslashes in single quotes literally', () => {
    assert.equal(fields(String.raw`A='a\nb\'`).A, 'a\\nb\\');
  });

  it('unescapes unquoted values and joins backslash-newline continuations', () => {
    assert.equal(fields('A=a\\ b\\"c\n').A, 'a b"c');
    assert.equal(fields('A=one\\\ntwo\nB=3\n').A, 'onetwo');
    assert.equal(fields('A="one \\\ntwo"\n').A, 'one two');
  });

  it('keeps newlines inside quoted values and counts lines across them', () => {
    const r = parse('A="x\ny"\nbroken\n');
    assert.equal(r.fields.get('A'), 'x\ny');
    assert.deepEqual(r.problems, [{ line: 3, message: "missing '=' in 'broken'" }]);
  });

  it('accepts empty values in every form', () => {
    assert.deepEqual(fields(`A=\nB=""\nC=''\nD=   \n`), { A: '', B: '', C: '', D: '' });
  });

  it('lets a later assignment win', () => {
    assert.equal(fields('ID=a\nID=b\n').ID, 'b');
  });

  it('handles CRLF, a byte order mark and a missing final newline', () => {
    assert.deepEqual(fields('\uFEFFID=a\r\nNAME="b c"\r\nX=y'), { ID: 'a', NAME: 'b c', X: 'y' });
  });

  it('reports malformed lines with their numbers instead of throwing', () => {
    const r = parse(
      [
        'ID=ok', //                     1
        'JUSTTEXT', //                  2
        '=novalue', //                  3
        'lower-case=1', //              4
        'export FOO=1', //              5
        'NAME="unterminated', //        6
      ].join('\n'),
    );
    assert.deepEqual(Object.fromEntries(r.fields), { ID: 'ok', NAME: 'unterminated' });
    assert.deepEqual(r.problems, [
      { line: 2, message: "missing '=' in 'JUSTTEXT'" },
      { line: 3, message: "missing key name before '='" },
      { line: 4, message: "invalid key 'lower-case'" },
      { line: 5, message: "invalid key 'export FOO'" },
      { line: 6, message: 'NAME: unterminated double quote' },
    ]);
  });

  it("reports values that a shell would read differently from systemd, keeping systemd's reading", () => {
    const r = parse(
      [
        'A=two words', //              1
        'B = spaced', //               2
        'C= lead', //                  3
        'D="x" "y"', //                4
        'E="$HOME"', //                5
        "F=it's", //                   6
        'G=a;b', //                    7
        '; old-style comment', //      8
        'I=trailing   ', //            9
        "H='unterminated", //          10 (runs to the end of the file, as in systemd)
        'J=swallowed',
      ].join('\n'),
    );
    assert.deepEqual(Object.fromEntries(r.fields), {
      A: 'two words',
      B: 'spaced',
      C: 'lead',
      D: 'xy',
      E: '$HOME',
      F: "it's",
      G: 'a;b',
      I: 'trailing',
      H: 'unterminated\nJ=swallowed',
    });
    const byLine = new Map<number, string[]>();
    for (const p of r.problems) byLine.set(p.line, [...(byLine.get(p.line) ?? []), p.message]);
    assert.match(byLine.get(1)!.join(), /^A: unquoted whitespace/);
    assert.match(byLine.get(2)!.join(), /^B: whitespace before '='/);
    assert.match(byLine.get(3)!.join(), /^C: whitespace after '='/);
    assert.match(byLine.get(4)!.join('|'), /concatenated/);
    assert.match(byLine.get(5)!.join(), /unescaped '\$' inside double quotes/);
    assert.match(byLine.get(6)!.join(), /unquoted '''/);
    assert.match(byLine.get(7)!.join(), /unquoted ';'/);
    assert.match(byLine.get(8)!.join(), /';' comment/);
    assert.equal(byLine.has(9), false);
    assert.match(byLine.get(10)!.join(), /unterminated single quote/);
  });

  const hostFile = ['/etc/os-release', '/usr/lib/os-release'].find((f) => existsSync(f));
  it(`parses the host's ${hostFile ?? 'os-release'} without problems, as ${SH} reads it`, { skip: !hostFile ? 'no os-release on this host' : !hasSh && `${SH} not found` }, () => {
    const text = readFileSync(hostFile!, 'utf8');
    const r = parseOsRelease(text);
    assert.deepEqual(r.problems, []);
    assert.ok(r.fields.size > 0);
    // os-release(5): ID is lower case [a-z0-9._-]; when it is missing the default is "linux".
    assert.match(r.fields.get('ID') ?? 'linux', /^[a-z0-9._-]+$/);
    assert.deepEqual(sourceWithShell(text, [...r.fields.keys()]), r.fields);
    // And it survives our own renderer when its keys are os-release style.
    const renderable = [...r.fields].filter(([k]) => /^[A-Z][A-Z0-9_]*$/.test(k));
    assert.deepEqual([...parseOsRelease(renderOsRelease(renderable)).fields], renderable);
  });
});
