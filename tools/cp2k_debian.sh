#!/bin/bash
# Install a newer CP2K from Debian (sid: 2025.2, experimental: 2026.2 in Dec 2026) in a minimal Debian sid chroot and
# write a wrapper /usr/local/bin/cp2k-<version> that runs its cp2k.psmp in the caller's directory, so that the same
# inputs can be run on the host's CP2K and on the newer one (docs/cp2k_versions.md). Needs root; idempotent.
#
#   tools/cp2k_debian.sh sid            # -> /opt/cp2k-sid, /usr/local/bin/cp2k-2025.2
#   tools/cp2k_debian.sh experimental   # -> /opt/cp2k-experimental, /usr/local/bin/cp2k-2026.2
#
# The wrapper bind-mounts the host's data directories (/work, /tmp, /home, /root, /srv, /mnt, /opt, /scratch, where
# they exist, and the top directory of the working directory) at the same paths in the chroot, so that the working
# directory and AiiDA's absolute parent_calc links resolve there; it does so in a private mount namespace (unshare), so nothing stays mounted after a run and removing
# the chroot never reaches the host's files.
set -euo pipefail
suite=${1:?usage: tools/cp2k_debian.sh sid|experimental}
case $suite in sid|experimental) ;; *) echo "suite must be sid or experimental, got $suite" >&2; exit 2 ;; esac
root=/opt/cp2k-$suite
apt_opts=(-o Acquire::Check-Valid-Until=false -y -qq --no-install-recommends)
if [ ! -x "$root/usr/bin/cp2k.psmp" ]; then
  command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }
  [ -d "$root/usr" ] || debootstrap --variant=minbase sid "$root" http://deb.debian.org/debian
  if [ "$suite" = experimental ]; then
    grep -q experimental "$root/etc/apt/sources.list" ||
      echo "deb http://deb.debian.org/debian experimental main" >> "$root/etc/apt/sources.list"
    packages=(cp2k/experimental cp2k-data/experimental)
  else
    packages=(cp2k)
  fi
  chroot "$root" apt-get -o Acquire::Check-Valid-Until=false update -qq
  DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get "${apt_opts[@]}" install "${packages[@]}"
fi
# 2026.2-1 ships its data in /usr/share/cp2k but looks in /usr/share/cp2k/data
[ -e "$root/usr/share/cp2k/data" ] || ln -s . "$root/usr/share/cp2k/data"
version=$(chroot "$root" dpkg-query -W -f='${Version}' cp2k | sed 's/-.*//')
wrapper=/usr/local/bin/cp2k-$version
cat > "$wrapper" <<WRAPPER
#!/bin/bash
# CP2K $version (Debian $suite package) from the chroot $root, run in the caller's directory (tools/cp2k_debian.sh).
exec unshare --mount --propagation private /bin/bash -c '
  root=\$1; shift
  for dir in /proc /sys /dev /dev/shm; do mount --bind "\$dir" "\$root\$dir" || exit 97; done
  here=/\$(echo "\$PWD" | cut -d/ -f2)  # the top directory of the working directory, wherever it is
  case \$here in /usr|/bin|/sbin|/lib|/lib64|/etc|/var|/boot|/run|/proc|/sys|/dev|/) here= ;; esac
  for dir in /work /tmp /home /root /srv /mnt /opt /scratch \$here; do
    [ -d "\$dir" ] && ! mountpoint -q "\$root\$dir" || continue
    mkdir -p "\$root\$dir" && mount --bind "\$dir" "\$root\$dir" || exit 97
  done
  exec chroot "\$root" /usr/bin/env -C "\$PWD" OMP_NUM_THREADS="\${OMP_NUM_THREADS:-1}" \\
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 /usr/bin/cp2k.psmp "\$@"' cp2k-$version "$root" "\$@"
WRAPPER
chmod +x "$wrapper"
"$wrapper" --version | sed -n 1p
echo "$wrapper"
