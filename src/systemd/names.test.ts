import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MkportableError } from '../errors.js';
import {
  PORTABLE_UNIT_TYPES,
  imageFileName,
  unitMatchesPrefix,
  validatePname,
  validateUnitName,
  validateVersion,
} from './names.js';

function throwsCode(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof MkportableError, `expected MkportableError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, message);
    assert.ok(!e.message.includes('\n'), 'messages are one line');
    return true;
  });
}

describe('validatePname', () => {
  for (const ok of ['demo', 'memcached', 'my-app', 'app.v2', 'A1', '0day', 'a', 'x'.repeat(247), 'foo.', 'a..b']) {
    it(`accepts '${ok.length > 20 ? `${ok.slice(0, 8)}…(${ok.length})` : ok}'`, () => assert.doesNotThrow(() => validatePname(ok)));
  }

  it("refuses '_' with portablectl's reason and a hint", () => {
    throwsCode(
      () => validatePname('my_app'),
      'NAME_INVALID',
      /^pname 'my_app' contains '_': portablectl cuts the image name at the first '_', so the prefix would be 'my'; use '-' instead$/,
    );
  });

  const refused: [string, RegExp][] = [
    ['', /^pname is empty/],
    ['my app', /^pname 'my app' contains U\+0020: portablectl only accepts A-Z, a-z, 0-9, '\.' and '-'/],
    ['a/b', /contains '\/'/],
    ['a:b', /contains ':'/],
    ['a@b', /contains '@'/],
    ['a\\b', /contains '\\'/],
    ['tab\there', /contains U\+0009/],
    ['nul\0', /contains U\+0000/],
    ['café', /contains 'é'/],
    ['.hidden', /starts with '\.': the image would be a hidden file/],
    ['.', /starts with '\.'/],
    ['..', /starts with '\.'/],
    ['-opt', /starts with '-': portablectl would read the image name as an option/],
    ['x'.repeat(248), /is 248 characters long: .* 255-character unit name limit/],
  ];
  for (const [value, message] of refused) {
    it(`refuses ${JSON.stringify(value.length > 20 ? `${value.slice(0, 8)}…` : value)}`, () =>
      throwsCode(() => validatePname(value), 'NAME_INVALID', message));
  }

  it("names the setting as the error's subject", () => {
    try {
      validatePname('my_app');
      assert.fail('no error');
    } catch (e) {
      assert.ok(e instanceof MkportableError);
      assert.equal(e.subject, 'pname');
    }
  });
});

describe('validateVersion', () => {
  for (const ok of ['1', '1.0', '1.2.3-rc1+git.abc123', '2024_06_01', '1.0~beta2', 'v2', '.1', '-1', '_', '...']) {
    it(`accepts '${ok}'`, () => assert.doesNotThrow(() => validateVersion(ok)));
  }

  const refused: [string, RegExp][] = [
    ['', /^version is empty/],
    ['.', /^version '\.' is not a usable name/],
    ['..', /^version '\.\.' is not a usable name/],
    ['1/2', /^version '1\/2' contains '\/': only A-Z, a-z, 0-9 and '\.', '_', '\+', '~', '-' are allowed/],
    ['1 2', /contains U\+0020/],
    ['1\n', /contains U\+000A/],
    ['1\0', /contains U\+0000/],
    ['1:2', /contains ':'/],
    ['1.0*', /contains '\*'/],
    ['ü', /contains 'ü'/],
  ];
  for (const [value, message] of refused) {
    it(`refuses ${JSON.stringify(value)}`, () => throwsCode(() => validateVersion(value), 'NAME_INVALID', message));
  }
});

describe('imageFileName', () => {
  it('joins pname and version portablectl-style', () => {
    assert.equal(imageFileName('demo', '1.0'), 'demo_1.0.raw');
    assert.equal(imageFileName('demo', '2024_06'), 'demo_2024_06.raw');
  });

  it('validates both parts and the total length', () => {
    throwsCode(() => imageFileName('my_app', '1'), 'NAME_INVALID', /^pname 'my_app'/);
    throwsCode(() => imageFileName('demo', ''), 'NAME_INVALID', /^version is empty/);
    throwsCode(() => imageFileName('d'.repeat(200), '1'.repeat(60)), 'NAME_INVALID', /longer than 255 bytes/);
    assert.equal(imageFileName('d'.repeat(200), '1'.repeat(50)).length, 255);
  });
});

describe('unitMatchesPrefix', () => {
  const matches = ['demo.service', 'demo-web.service', 'demo@.service', 'demo@x.service', 'demo.extra.timer', 'demo.socket', 'demo-a-b.path', 'demo'];
  for (const unit of matches) {
    it(`demo matches ${unit}`, () => assert.equal(unitMatchesPrefix(unit, 'demo'), true));
  }

  const nonMatches = ['demonstration.service', 'demo_x.service', 'Demo.service', 'xdemo.service', 'dem.service', 'other.service', ''];
  for (const unit of nonMatches) {
    it(`demo does not match '${unit}'`, () => assert.equal(unitMatchesPrefix(unit, 'demo'), false));
  }

  it('works with prefixes containing dots and dashes', () => {
    assert.equal(unitMatchesPrefix('app.v2.service', 'app.v2'), true);
    assert.equal(unitMatchesPrefix('app.v2-worker.service', 'app.v2'), true);
    assert.equal(unitMatchesPrefix('app.v20.service', 'app.v2'), false);
    assert.equal(unitMatchesPrefix('my-app.service', 'my'), true); // portabled's rule, so the prefix "my" also claims it
  });

  it('never matches an empty prefix', () => {
    assert.equal(unitMatchesPrefix('demo.service', ''), false);
  });
});

describe('validateUnitName', () => {
  it('lists the attachable unit types', () => {
    assert.deepEqual([...PORTABLE_UNIT_TYPES], ['.service', '.socket', '.target', '.timer', '.path']);
  });

  const accepted = [
    'demo.service',
    'demo.socket',
    'demo.target',
    'demo.timer',
    'demo.path',
    'demo-web.service',
    'demo@.service',
    'demo@instance.service',
    'demo@a@b.service',
    'demo.extra.timer',
    'demo-x:y_z\\x2d.service',
  ];
  for (const unit of accepted) {
    it(`accepts ${unit}`, () => assert.doesNotThrow(() => validateUnitName(unit, 'demo')));
  }

  it('refuses unit types portabled does not attach', () => {
    for (const type of ['mount', 'swap', 'device', 'automount', 'slice', 'scope']) {
      throwsCode(
        () => validateUnitName(`demo.${type}`, 'demo'),
        'UNIT_IGNORED',
        new RegExp(`^unit 'demo\\.${type}': portabled only attaches \\.service, \\.socket, \\.target, \\.timer and \\.path units$`),
      );
    }
  });

  it('refuses units without the image prefix', () => {
    for (const unit of ['other.service', 'demonstration.service', 'demo_x.service', 'x-demo.socket']) {
      throwsCode(
        () => validateUnitName(unit, 'demo'),
        'UNIT_IGNORED',
        new RegExp(`^unit '${unit.replace(/\./g, '\\.')}' does not start with the image prefix 'demo' followed by '\\.', '-' or '@': portabled would ignore it`),
      );
    }
  });

  const invalid: [string, RegExp][] = [
    ['', /it is empty/],
    ['demo', /has no '\.<type>' suffix/],
    ['.service', /has no '\.<type>' suffix/],
    ['demo.conf', /'\.conf' is not a unit type/],
    ['demo.Service', /'\.Service' is not a unit type/],
    ['@.service', /nothing precedes '@'/],
    ['@x.service', /nothing precedes '@'/],
    ['demo web.service', /contains U\+0020/],
    ['demo/web.service', /contains '\/'/],
    ['démo.service', /contains 'é'/],
    [`demo-${'x'.repeat(243)}.service`, /is longer than 255 bytes/],
  ];
  for (const [unit, message] of invalid) {
    it(`refuses invalid name ${JSON.stringify(unit.length > 30 ? `${unit.slice(0, 10)}…` : unit)}`, () =>
      throwsCode(() => validateUnitName(unit, 'demo'), 'NAME_INVALID', new RegExp(`^unit '.*' is not a valid systemd unit name: (it )?${message.source}`)));
  }

  it('accepts a name of exactly 255 characters', () => {
    assert.doesNotThrow(() => validateUnitName(`demo-${'x'.repeat(242)}.service`, 'demo'));
  });

  it("uses the unit name as the error's subject", () => {
    try {
      validateUnitName('x.mount', 'demo');
      assert.fail('no error');
    } catch (e) {
      assert.ok(e instanceof MkportableError);
      assert.equal(e.subject, 'x.mount');
    }
  });
});
