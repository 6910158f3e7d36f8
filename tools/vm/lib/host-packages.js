'use strict';
const { run, which } = require('./exec');
const { VmError } = require('./errors');

// Debian packages the test bed needs on the host. ipxe-qemu (a dependency of
// qemu-system-x86) provides e1000e's option ROM, which the suite exposes as a
// ROM region, so recommends can be skipped safely. gcc builds the self-check
// programs the guest runs (check/*.c); xz-utils unpacks compressed modules;
// debootstrap makes the Debian 13 root that QEMU 11.1 comes from.
const REQUIRED = ['qemu-system-x86', 'busybox-static', 'kmod', 'gcc', 'libc6-dev', 'xz-utils', 'debootstrap'];

function isInstalled(pkg) {
  const res = run('dpkg-query', ['-W', '-f=${Status}', pkg], { allowFail: true });
  return res.status === 0 && /install ok installed/.test(res.stdout);
}

// apt needs root; fall back to sudo so a developer account works too.
function asRoot(cmd, args) {
  if (process.getuid && process.getuid() === 0) return [cmd, args];
  if (which('sudo')) return ['sudo', [cmd, ...args]];
  throw new VmError(`${cmd} ${args.join(' ')} needs root (and sudo is not installed)`);
}

function aptGet(args, log) {
  const [cmd, argv] = asRoot('apt-get', args);
  log(`$ ${cmd} ${argv.join(' ')}`);
  process.env.DEBIAN_FRONTEND = 'noninteractive';
  run(cmd, argv, { inherit: true });
}

let updated = false;
// apt-get update once per process, and only when something needs it: a fresh
// machine (empty lists) or a package that apt cannot find.
function aptUpdateOnce(log) {
  if (updated) return;
  updated = true;
  aptGet(['update'], log);
}

function ensureHostPackages(log, extra = []) {
  if (!which('apt-get') || !which('dpkg-query')) {
    throw new VmError('the test bed needs a Debian-like host (apt-get and dpkg-query not found)');
  }
  const missing = [...new Set([...REQUIRED, ...extra])].filter((p) => !isInstalled(p));
  if (missing.length === 0) return [];
  log(`installing ${missing.join(', ')}`);
  aptUpdateOnce(log);
  aptGet(['install', '-y', '--no-install-recommends', ...missing], log);
  return missing;
}

module.exports = { ensureHostPackages, aptUpdateOnce, REQUIRED };
