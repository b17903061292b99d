// Maintainer scripts (Debian) and scriptlets (RPM) of a package: state
// directories with their owner and mode, and the unit's life cycle: an
// upgrade restarts the service when it runs, a removal stops and disables
// it. Teleport is its own unit and is never touched: removing the agent
// leaves the cluster member running.
import type { PackageSpec } from './layout';

const SYSTEMD_RUNNING = '[ -d /run/systemd/system ]';

function stateDirs(spec: PackageSpec): string {
  return spec.stateDirs.map((d) => `install -d -m ${d.mode.toString(8).padStart(4, '0')} -o ${d.owner} -g ${d.owner} ${d.path}`).join('\n');
}

const purgeDirs = (spec: PackageSpec) => spec.stateDirs.map((d) => `rm -rf ${d.path}`).join('\n') || ':';

export function debianScripts(spec: PackageSpec): Record<'postinst' | 'prerm' | 'postrm', string> {
  return {
    // configure: $2 is the version being upgraded from, empty on a first install.
    postinst: `#!/bin/sh
set -e
if [ "$1" = configure ]; then
${stateDirs(spec)}
  if ${SYSTEMD_RUNNING}; then
    systemctl daemon-reload || true
    if [ -n "$2" ]; then systemctl try-restart ${spec.unit} || true; fi
  fi
fi
exit 0
`,
    prerm: `#!/bin/sh
set -e
if [ "$1" = remove ] && ${SYSTEMD_RUNNING}; then
  systemctl disable --now ${spec.unit} || true
fi
exit 0
`,
    postrm: `#!/bin/sh
set -e
if [ "$1" = purge ]; then
${purgeDirs(spec)}
fi
if ${SYSTEMD_RUNNING}; then systemctl daemon-reload || true; fi
exit 0
`,
  };
}

/** %post, %preun, %postun: $1 counts the installed versions after the operation (0 = removal). */
export function rpmScriptlets(spec: PackageSpec): Record<'post' | 'preun' | 'postun', string> {
  return {
    post: `${stateDirs(spec)}
if ${SYSTEMD_RUNNING}; then systemctl daemon-reload || true; fi
exit 0`,
    preun: `if [ "$1" -eq 0 ] && ${SYSTEMD_RUNNING}; then systemctl disable --now ${spec.unit} || true; fi
exit 0`,
    postun: `if ${SYSTEMD_RUNNING}; then
  systemctl daemon-reload || true
  if [ "$1" -ge 1 ]; then systemctl try-restart ${spec.unit} || true; fi
fi
exit 0`,
  };
}
