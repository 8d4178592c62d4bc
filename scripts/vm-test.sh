#!/usr/bin/env bash
# Runs a command in this checkout inside a small QEMU VM whose only cgroup hierarchy is
# cgroup2 at /sys/fs/cgroup, and returns the command's exit status. This is how the
# engine meets real cgroup v2 controllers (memory, cpu, pids, cgroup.kill, cgroup.freeze,
# CLONE_INTO_CGROUP) on hosts that mount cgroup v1 (hybrid), where v2 exists only as
# fabricated trees in unit tests.
#
#   scripts/vm-test.sh [options] [--] COMMAND...   COMMAND runs under bash, as root, in
#                                                  the checkout (built: dist/ must exist)
#   scripts/vm-test.sh --prepare [--kernel K]      fetch/build what the VM needs, then exit
#
# Options:
#   --kernel 6.1|6.12  guest kernel (default 6.1): Debian 12's linux-image-6.1.0-*-amd64,
#                      or its backport 6.12 (memory.peak can be reset from 6.12 on)
#   --timeout S        limit for COMMAND in the guest (default 1800); the host kills the
#                      whole VM GRACE (120) s after that
#   --smp N            vCPUs (default 2)        --mem MB   guest memory (default 2048)
#   --keep             keep the run's temp dir (console.log, out.log) and print its path
#
# Do not rebuild the checkout while a run is under way: the guest caches the 9p share
# (cache=loose), and a file rewritten under it was once read half-written (SyntaxError).
#
# Exit status: COMMAND's; 124 when it ran past --timeout (the guest's timeout(1) ended
# it); 125 when the VM reported no status (did not boot, or stopped answering and was
# killed by the host-side limit: the reason is printed); 3 when the VM cannot be made on
# this machine (no QEMU or kernel package reachable: the reason is printed, so that a
# caller can skip with it); 2 on bad usage.
#
# Nothing is left on the host: qemu is a child of this script, killed on every way out;
# the run's temp dir is removed; the guest's writes stay in its own tmpfs. The cache of
# kernels and initramfs images lives in $FAASBOX_VM_CACHE (default /var/cache/faasbox-vm).
set -euo pipefail
SELF=$(realpath "$0")
cd "$(dirname "$SELF")/.."
PROJ=$(pwd -P)

CACHE=${FAASBOX_VM_CACHE:-/var/cache/faasbox-vm}
KSEL=6.1 TIMEOUT=1800 GRACE=120 SMP=2 MEM=2048 KEEP=0 PREPARE=0
usage() { sed -n '2,/^set -euo/p' "$SELF" | sed -e '$d' -e 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel) KSEL=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --smp) SMP=$2; shift 2 ;;
    --mem) MEM=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --prepare) PREPARE=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -*) echo "vm-test: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
# The package names are pinned: the kernel's ABI name is part of them, and a kernel whose
# package left the archive should fail loudly here rather than boot something else.
case "$KSEL" in
  6.1) KPKG=linux-image-6.1.0-47-amd64 ;;
  6.12) KPKG=linux-image-6.12.117+deb12-amd64 ;;
  *) echo "vm-test: --kernel 6.1 or 6.12" >&2; exit 2 ;;
esac
KVER=${KPKG#linux-image-}
KDIR=$CACHE/$KVER
# What the guest needs beyond the built-ins of Debian's kernel: the 9p shares over virtio,
# OverlayFS (the shares' writable layers, and the engine's rootfs), veth and bridge (the
# engine's network tests).
MODULES="virtio_pci 9pnet_virtio 9p overlay veth bridge"

say() { echo "vm-test: $*" >&2; }
unavailable() { say "cannot make the VM here: $*"; exit 3; }

# ------------------------------------------------------------------ preparation ---

ensure_qemu() {
  command -v qemu-system-x86_64 >/dev/null && return 0
  [ "$(id -u)" = 0 ] || unavailable "qemu-system-x86_64 is not installed (and not root to install it)"
  say "installing qemu-system-x86"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null 2>&1; } ||
    unavailable "apt-get could not install qemu-system-x86"
}

# apt-get download only unpacks into the cache: the host's own kernel and /boot are untouched.
ensure_kernel() {
  [ -s "$KDIR/vmlinuz" ] && [ -d "$KDIR/modules" ] && return 0
  say "fetching $KPKG from the Debian archive"
  local tmp
  tmp=$(mktemp -d "$CACHE/fetch.XXXXXX")
  (cd "$tmp" && { apt-get download "$KPKG" >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get download "$KPKG" >/dev/null 2>&1; }; }) ||
    { rm -rf "$tmp"; unavailable "apt-get download $KPKG failed (is Debian 12's archive, or its security archive for 6.12, in the apt sources?)"; }
  dpkg-deb -x "$tmp"/*.deb "$tmp/x"
  rm -rf "$KDIR"; mkdir -p "$KDIR"
  mv "$tmp/x/boot/vmlinuz-$KVER" "$KDIR/vmlinuz"
  mv "$tmp/x/lib/modules/$KVER" "$KDIR/modules"
  rm -rf "$tmp"
}

# The initramfs: a static busybox, the modules above (each after the ones its .modinfo
# says it depends on: the package ships no modules.dep, and depmod may be missing here),
# and the two boot stages below. Named by this script's hash: checkouts with different
# versions of it share the cache without rebuilding each other's.
ensure_initramfs() {
  INITRD=$KDIR/initrd-$(sha256sum "$SELF" | cut -c1-12).gz
  [ -s "$INITRD" ] && return 0
  local bb ir=$KDIR/initrd.d order=() n=0
  bb=$(command -v busybox || true)
  # A dynamic busybox would need the host's libc before /usr is mounted.
  if [ -z "$bb" ] || ldd "$bb" >/dev/null 2>&1; then unavailable "a static busybox is needed (apt-get install busybox-static)"; fi
  rm -rf "$ir"; mkdir -p "$ir"/{bin,dev,proc,sys,newroot,modules}
  cp "$bb" "$ir/bin/busybox"
  add() { # $1: module name; built-in ones have no file and need nothing
    local m=$1 f x dep out
    for x in "${order[@]}"; do [ "$x" = "$m" ] && return 0; done
    f=$(find "$KDIR/modules/kernel" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -n 1)
    [ -n "$f" ] || { grep -q "/$m.ko$" "$KDIR/modules/modules.builtin" || { say "module $m not found for $KVER"; exit 1; }; return 0; }
    out=$ir/modules/$m.ko
    case "$f" in # busybox insmod takes plain ELF modules only
      *.xz) xz -dc "$f" ;;
      *.zst) zstd -dcq "$f" ;;
      *) cat "$f" ;;
    esac > "$out"
    for dep in $(tr '\0' '\n' < "$out" | sed -n 's/^depends=//p' | tr , ' '); do add "$dep"; done
    order+=("$m")
  }
  for m in $MODULES; do add "$m"; done
  for m in "${order[@]}"; do n=$((n + 1)); mv "$ir/modules/$m.ko" "$ir/modules/$(printf %02d $n)-$m.ko"; done
  write_stages "$ir"
  (cd "$ir" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 > "$INITRD.tmp") && mv "$INITRD.tmp" "$INITRD"
  rm -rf "$ir"
  say "initramfs for $KVER: modules ${order[*]}"
}

write_stages() {
  # Stage 1 (the initramfs's /init): the shares, and a root of tmpfs to switch into.
  cat > "$1/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
die() { echo "VM: boot failed: $*"; poweroff -f; }
for m in /modules/*.ko; do insmod "$m" || die "insmod $m"; done
# msize: 9p's default (8 KiB) would split every read of dist/ and node_modules into many round trips; the kernel caps it at 512000.
p9="trans=virtio,version=9p2000.L,msize=512000"
R=/newroot
mount -t tmpfs -o mode=0755,size=80% root $R || die "tmpfs root"
cd $R && mkdir -p usr etc proc sys dev tmp run root job var/tmp var/lib/dpkg .vm/lower/etc .vm/lower/proj .vm/upper .vm/work && cd /
chmod 1777 $R/tmp $R/var/tmp
for l in bin sbin lib lib64; do ln -s usr/$l $R/$l; done
# Read-only, cached: the host's /usr (node, redis-server, runc, gcc...), /etc and the
# dpkg database (what the images are built from). Written only through overlays below.
mount -t 9p -o $p9,ro,cache=loose usr $R/usr || die "9p usr"
mount -t 9p -o $p9,ro,cache=loose dpkg $R/var/lib/dpkg || die "9p dpkg"
mount -t 9p -o $p9,ro,cache=loose etc $R/.vm/lower/etc || die "9p etc"
mount -t 9p -o $p9,ro,cache=loose proj $R/.vm/lower/proj || die "9p checkout"
# The one writable share: the command, and where the guest leaves its status.
mount -t 9p -o $p9,cache=none job $R/job || die "9p job"
. $R/job/env
ov() { # $1: lower, $2: where; the upper layer is in the guest's tmpfs
  n=$(echo "$2" | tr / _)
  mkdir -p $R/.vm/upper/$n $R/.vm/work/$n $R$2
  mount -t overlay -o lowerdir=$R$1,upperdir=$R/.vm/upper/$n,workdir=$R/.vm/work/$n overlay $R$2 || die "overlay $2"
}
ov /.vm/lower/etc /etc
ov /.vm/lower/proj "$PROJ"
cp /bin/busybox $R/.vm/busybox; cp /stage2 $R/.vm/stage2
mount --move /proc $R/proc; mount --move /sys $R/sys; mount --move /dev $R/dev
exec switch_root $R /.vm/busybox sh /.vm/stage2
EOF
  # Stage 2 (in the new root): what a cgroup-v2-only host has, then the command.
  cat > "$1/stage2" <<'EOF'
B=/.vm/busybox
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb
# nsdelegate, as systemd mounts it: cgroup namespaces are delegation boundaries.
$B mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || echo "VM: cannot mount cgroup2"
$B mkdir -p /dev/pts /dev/shm /run/netns
$B mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts && $B ln -sf pts/ptmx /dev/ptmx
$B mount -t tmpfs -o mode=1777 shm /dev/shm
for s in fd:self/fd stdin:self/fd/0 stdout:self/fd/1 stderr:self/fd/2; do $B ln -sf /proc/${s#*:} /dev/${s%%:*}; done
$B hostname faasbox-vm; $B ip link set lo up
. /job/env
echo "VM: up $($B cut -d' ' -f1 /proc/uptime) s, kernel $($B uname -r), $($B nproc) vCPUs, /sys/fs/cgroup magic 0x$($B stat -f -c %t /sys/fs/cgroup) [$(cat /sys/fs/cgroup/cgroup.controllers)]"
cd "$PROJ"
t0=$($B cut -d' ' -f1 /proc/uptime)
# GNU timeout from the host's /usr: it signals the command's process group and exits 124.
/usr/bin/timeout -k 15 "$TIMEOUT" /bin/bash /job/cmd < /dev/null > /dev/console 2>&1
rc=$?
echo "VM: command exited $rc after $(echo "$($B cut -d' ' -f1 /proc/uptime) $t0" | $B awk '{printf "%.0f", $1-$2}') s"
echo $rc > /job/rc
$B sync; $B umount /job
$B poweroff -f
EOF
  chmod +x "$1/init"
}

mkdir -p "$CACHE"
ensure_qemu
ensure_kernel
ensure_initramfs
[ "$PREPARE" = 1 ] && exit 0

# ------------------------------------------------------------------------- run ---

[ $# -ge 1 ] || { usage >&2; exit 2; }
[ -d "$PROJ/dist" ] || { echo "vm-test: $PROJ/dist is missing: build first (npm run build)" >&2; exit 2; }
case "$PROJ" in
  /usr* | /etc* | /proc* | /sys* | /dev* | /job* | /.vm* | /var/lib/dpkg*) echo "vm-test: the checkout at $PROJ would hide part of the guest" >&2; exit 2 ;;
  *[!A-Za-z0-9/._+-]*) echo "vm-test: the checkout path $PROJ has characters the boot stages do not quote" >&2; exit 2 ;;
esac

RUN=$(mktemp -d /tmp/faasbox-vm.XXXXXX)
mkdir "$RUN/job"
QPID=
finish() {
  # Every way out: qemu (through its timeout(1) parent) dies with us, the temp dir goes.
  [ -n "$QPID" ] && kill "$QPID" 2>/dev/null && wait "$QPID" 2>/dev/null
  if [ "$KEEP" = 1 ]; then say "kept $RUN"; else rm -rf "$RUN"; fi
}
trap finish EXIT
trap 'exit 130' INT TERM
{ echo "PROJ=$PROJ"; echo "TIMEOUT=$TIMEOUT"; } > "$RUN/job/env"
if [ $# -eq 1 ]; then printf '%s\n' "$1"; else printf '%q ' "$@"; echo; fi > "$RUN/job/cmd"

share() { echo "local,path=$1,mount_tag=$2,security_model=none,multidevs=remap,readonly=$3"; }
# TCG, not KVM: /dev/kvm on these machines is nested PVM, where a stock kernel stops on
# emulation failures (cmpxchg16b, xrstor, int3). -cpu max: the guest sees the features
# TCG emulates (the engine needs nothing exotic). The bzImage is booted as is (qemu's
# Linux loader); the kernel's own decompressor costs about a second under TCG.
QEMU=(qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp "$SMP" -m "$MEM"
  -kernel "$KDIR/vmlinuz" -initrd "$INITRD"
  -append "console=ttyS0 loglevel=4 panic=-1 mitigations=off"
  -nodefaults -no-reboot -display none -monitor none -serial "file:$RUN/console.log"
  -virtfs "$(share /usr usr on)" -virtfs "$(share /etc etc on)" -virtfs "$(share /var/lib/dpkg dpkg on)"
  -virtfs "$(share "$PROJ" proj on)" -virtfs "$(share "$RUN/job" job off)")
LIMIT=$((TIMEOUT + GRACE))
say "kernel $KVER, $SMP vCPUs, ${MEM} MiB, checkout $PROJ (read-only; writes stay in the guest), limit $TIMEOUT s (+$GRACE s host-side)"
t0=$(date +%s)
: > "$RUN/console.log"
# -k: a qemu that ignores SIGTERM (stuck in a 9p request) is SIGKILLed 10 s later.
timeout -k 10 "$LIMIT" "${QEMU[@]}" < /dev/null > "$RUN/qemu.err" 2>&1 &
QPID=$!
# The console as it comes (SeaBIOS's screen escapes dropped); tail ends with qemu.
tail -n +1 -f --pid="$QPID" "$RUN/console.log" | sed -u -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' -e 's/\r$//'
qrc=0; wait "$QPID" || qrc=$?
QPID=
secs=$(($(date +%s) - t0))
if [ -s "$RUN/job/rc" ]; then
  rc=$(cat "$RUN/job/rc")
  say "command exited $rc ($secs s wall, boot and poweroff included)"
  exit "$rc"
fi
# No status: say why, as precisely as the console allows.
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
  why="the guest stopped answering: killed by the host-side limit after $secs s"
  grep -q 'soft lockup' "$RUN/console.log" && why="$why (the console shows a soft lockup)"
elif grep -q 'VM: boot failed' "$RUN/console.log"; then
  why=$(grep -m1 'VM: boot failed' "$RUN/console.log")
elif grep -q 'Kernel panic' "$RUN/console.log"; then
  why="guest kernel panic: $(grep -m1 'Kernel panic' "$RUN/console.log")"
else
  why="qemu exited $qrc after $secs s: $(tail -n 3 "$RUN/qemu.err" | tr '\n' ' ')"
fi
say "no exit status from the VM: $why"
exit 125
