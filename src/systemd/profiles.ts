/**
 * portablectl's profiles (`--profile=`), as far as they decide whether a service can run: the drop-in portabled
 * attaches beside each unit (`10-profile.conf`) sets these, and a drop-in wins over the unit's own lines, so a
 * unit cannot turn them back off. Facts of systemd 252 and 257 (/usr/lib/systemd/portable/profile/NAME/service.conf):
 * both versions agree on every setting below.
 */
export interface Profile {
  name: string;
  dynamicUser: boolean;
  memoryDenyWriteExecute: boolean;
  /** Address families the service may use; undefined: all. */
  addressFamilies?: readonly string[];
  /** The capability bounding set; undefined: all. */
  capabilities?: readonly string[];
  privateNetwork: boolean;
  noNewPrivileges: boolean;
  /** One line for people: what the profile takes away. */
  summary: string;
}

const CAPS_DEFAULT = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER',
  'CAP_KILL', 'CAP_MKNOD', 'CAP_NET_ADMIN', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_SETGID', 'CAP_SETPCAP',
  'CAP_SETUID', 'CAP_SYS_ADMIN', 'CAP_SYS_CHROOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE',
];
const CAPS_NONETWORK = CAPS_DEFAULT.filter((c) => !['CAP_NET_ADMIN', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST'].includes(c));

export const PROFILES: Readonly<Record<string, Profile>> = {
  default: {
    name: 'default', dynamicUser: true, memoryDenyWriteExecute: true, addressFamilies: ['AF_UNIX', 'AF_NETLINK', 'AF_INET', 'AF_INET6'],
    capabilities: CAPS_DEFAULT, privateNetwork: false, noNewPrivileges: false,
    summary: 'dynamic user, read-only system, W^X memory, AF_UNIX/NETLINK/INET/INET6, a reduced capability set',
  },
  nonetwork: {
    name: 'nonetwork', dynamicUser: true, memoryDenyWriteExecute: true, addressFamilies: ['AF_UNIX', 'AF_NETLINK'],
    capabilities: CAPS_NONETWORK, privateNetwork: true, noNewPrivileges: false,
    summary: 'as default, and no network: a private network namespace, AF_UNIX/NETLINK only, no CAP_NET_*',
  },
  strict: {
    name: 'strict', dynamicUser: true, memoryDenyWriteExecute: true, addressFamilies: ['AF_UNIX'], capabilities: [],
    privateNetwork: true, noNewPrivileges: true,
    summary: 'as nonetwork, and no capabilities at all, NoNewPrivileges=yes, AF_UNIX only, at most 4 tasks',
  },
  trusted: {
    name: 'trusted', dynamicUser: false, memoryDenyWriteExecute: false, privateNetwork: false, noNewPrivileges: false,
    summary: 'no sandbox beyond a private /tmp: the unit runs as it says (User=, capabilities, JIT), with the host\'s /run',
  },
};

export const PROFILE_NAMES = Object.keys(PROFILES);

/**
 * Programs that write and then run machine code (JIT compilers): MemoryDenyWriteExecute=yes kills them (node: status
 * 5/TRAP). Matched on the program's file name and on the libraries it links.
 */
export const JIT_PROGRAMS = /^(node|nodejs|java|luajit|dotnet|pypy3?|mono|qemu-.*|deno|bun|julia|beam\.smp|erl)$/;
export const JIT_LIBRARIES = /^(libnode\.so|libjvm\.so|libluajit-.*\.so|libmonosgen-.*\.so|libcoreclr\.so|libv8\.so|libmozjs-.*\.so|libjavascriptcoregtk-.*\.so)/;
