import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MkportableError } from '../errors.js';
import { parseUnitFile } from '../formats/unitfile.js';
import { SYSTEMD_DEFAULT_PATH } from '../systemd/portabled.js';
import { execSearchPath, unitPrograms } from './programs.js';

const programs = (name: string, text: string) => unitPrograms(parseUnitFile(text, name), name);

describe('unitPrograms', () => {
  it("reads a service's [Service] keys and a socket's [Socket] keys, each in its own section only", () => {
    const both = '[Service]\nExecStart=/s/start\nExecStopPre=/s/not-a-service-key\n[Socket]\nExecStartPre=/k/pre\nExecStopPre=/k/stoppre\n';
    assert.deepEqual(programs('a.service', both).map((p) => `${p.section}.${p.key}=${p.executable}`), ['Service.ExecStart=/s/start']);
    assert.deepEqual(programs('a.socket', both).map((p) => `${p.section}.${p.key}=${p.executable}`), [
      'Socket.ExecStartPre=/k/pre',
      'Socket.ExecStopPre=/k/stoppre',
    ]);
    assert.deepEqual(programs('a.timer', '[Timer]\nOnCalendar=daily\n[Service]\nExecStart=/x\n'), []);
  });

  it('strips every prefix and keeps each command of a multi-command line', () => {
    const ps = programs('a.service', '[Service]\nExecStart=-@:/usr/bin/a argv0 x ; +/usr/bin/b\nExecStartPre=!!/usr/bin/c\nExecStartPre=|\n');
    assert.deepEqual(ps.map((p) => [p.key, p.prefixes, p.executable, p.argv.join(' ')]), [
      ['ExecStart', '-@:', '/usr/bin/a', 'argv0 x'],
      ['ExecStart', '+', '/usr/bin/b', '/usr/bin/b'],
      ['ExecStartPre', '!!', '/usr/bin/c', '/usr/bin/c'],
    ]);
    assert.deepEqual(ps.map((p) => p.line), [2, 2, 3]);
  });

  it('an empty assignment resets the list, as systemd does', () => {
    assert.deepEqual(programs('a.service', '[Service]\nExecStartPre=/a\nExecStartPre=\nExecStartPre=/b\nExecStart=/c\n').map((p) => p.executable), ['/c', '/b']);
  });

  it('looks up bare names in ExecSearchPath= when set, and gives the process Environment=PATH= over it', () => {
    const [plain] = programs('a.service', '[Service]\nExecStart=tool\n');
    assert.deepEqual(plain.searchPath, SYSTEMD_DEFAULT_PATH);
    assert.deepEqual(plain.envPath, SYSTEMD_DEFAULT_PATH);
    const [search] = programs('a.service', '[Service]\nExecSearchPath=/opt/a:/opt/b\nExecStart=tool\n');
    assert.deepEqual(search.searchPath, ['/opt/a', '/opt/b']);
    assert.deepEqual(search.envPath, ['/opt/a', '/opt/b'], 'ExecSearchPath= becomes PATH when Environment= sets none');
    const [env] = programs('a.service', '[Service]\nExecSearchPath=/opt/a\nEnvironment=PATH=/opt/env:/usr/bin\nExecStart=tool\n');
    assert.deepEqual(env.searchPath, ['/opt/a'], 'Environment=PATH= does not change where systemd finds the program');
    assert.deepEqual(env.envPath, ['/opt/env', '/usr/bin']);
    const [envOnly] = programs('a.service', '[Service]\nEnvironment="PATH=/opt/env"\nExecStart=tool\n');
    assert.deepEqual(envOnly.searchPath, SYSTEMD_DEFAULT_PATH);
    assert.deepEqual(envOnly.envPath, ['/opt/env']);
  });

  it("reads a socket's ExecSearchPath= and Environment= from [Socket]", () => {
    const [p] = programs('a.socket', '[Service]\nExecSearchPath=/wrong\n[Socket]\nExecSearchPath=/opt/s\nEnvironment=PATH=/opt/e\nExecStartPost=tool\n');
    assert.deepEqual(p.searchPath, ['/opt/s']);
    assert.deepEqual(p.envPath, ['/opt/e']);
  });

  it('flags programs with specifiers, not arguments with them', () => {
    const ps = programs('a@.service', '[Service]\nExecStart=/usr/bin/%p-run\nExecStartPost=/usr/bin/post %i %%\n');
    assert.deepEqual(ps.map((p) => [p.executable, p.hasSpecifier]), [['/usr/bin/%p-run', true], ['/usr/bin/post', false]]);
  });

  it('throws UNIT_INVALID naming the line, or reports each bad line and keeps the others', () => {
    const text = '[Service]\nExecStart=/ok\nExecStartPre="/unbalanced\nExecStartPost=relative/path\n';
    assert.throws(() => unitPrograms(parseUnitFile(text, 'a.service'), 'a.service', { where: '/etc/a.service' }), (e: unknown) => {
      assert.ok(e instanceof MkportableError && e.code === 'UNIT_INVALID');
      assert.match(e.message, /^\/etc\/a\.service:3: ExecStartPre=: /);
      return true;
    });
    const bad: string[] = [];
    const ps = unitPrograms(parseUnitFile(text, 'a.service'), 'a.service', { onInvalid: (e) => bad.push(e.message) });
    assert.deepEqual(ps.map((p) => p.executable), ['/ok']);
    assert.equal(bad.length, 2);
    assert.match(bad[0], /a\.service:3: ExecStartPre=/);
    assert.match(bad[1], /a\.service:4: ExecStartPost=/);
  });
});

describe('execSearchPath', () => {
  const search = (body: string) => execSearchPath(parseUnitFile(`[Service]\n${body}\n`, 'a.service'), 'Service');
  it('is undefined when unset', () => assert.equal(search('ExecStart=/x'), undefined));
  it('appends assignments; an empty one resets', () => {
    assert.deepEqual(search('ExecSearchPath=/a:/b\nExecSearchPath=/c'), ['/a', '/b', '/c']);
    assert.deepEqual(search('ExecSearchPath=/a\nExecSearchPath=\nExecSearchPath=/c'), ['/c']);
  });
  it('simplifies entries; an empty or relative entry ends its line, as in systemd', () => {
    assert.deepEqual(search('ExecSearchPath=/a//b/./c/:/d'), ['/a/b/c', '/d']);
    assert.deepEqual(search('ExecSearchPath=/a:rel:/b\nExecSearchPath=/c::/d'), ['/a', '/c']);
  });
  it('leaves out entries with specifiers (only systemd can expand them)', () => {
    assert.deepEqual(search('ExecSearchPath=/a:%h/bin:/b'), ['/a', '/b']);
  });
});
