#!/bin/sh
# Install the built Debian packages into a throwaway copy of this machine and run the
# service from them, as tests/packaging/test_debian.py asks:
#
#   unshare --mount --pid --fork --kill-child sh deb_install_run.sh DEB_DIR
#
# The copy is an overlay of / with its upper layer on a tmpfs, in a mount namespace of its
# own: apt, dpkg and the maintainer scripts run for real in it, and nothing reaches the
# machine. Being PID 1 of a PID namespace, this script takes every process it started with
# it when it ends. The daemon runs in a network namespace of its own as well, so the
# packaged configuration's TCP listener is reachable from nowhere.
#
# Each step prints "### step NAME", its output, then "### rc N".
set -u

debs=$1
work=$(mktemp -d /tmp/receptor-overlay.XXXXXX)
root=$work/root

mount -t tmpfs tmpfs "$work"
mkdir "$work/upper" "$work/work" "$root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/upper,workdir=$work/work" "$root"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --rbind /sys "$root/sys"
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mkdir "$root/tmp/debs"
cp "$debs"/receptor_*.deb "$debs"/python3-receptor_*.deb "$root/tmp/debs/"

step() {
    name=$1
    shift
    echo "### step $name"
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
        HOME=/root /bin/sh -c "$*" 2>&1
    echo "### rc $?"
}

# Minimal images tell dpkg to leave out manual pages: not in this copy.
step dpkg-config 'grep -l "^path-exclude.*/usr/share/man" /etc/dpkg/dpkg.cfg.d/* 2>/dev/null |
    xargs -r rm -v'

step install 'DEBIAN_FRONTEND=noninteractive apt-get install -y /tmp/debs/*.deb'

step packages 'dpkg-query -W -f="\${Package} \${Version} \${Status}\n" receptor python3-receptor'

step user 'getent passwd receptor && id receptor'

step permissions 'stat -c "%n %U:%G %a" /etc/receptor /etc/receptor/receptor.conf /var/lib/receptor'

step enabled 'ls /etc/systemd/system/multi-user.target.wants/receptor.service'

step verify 'systemd-analyze verify /lib/systemd/system/receptor.service'

step man-receptor 'MANWIDTH=80 man --warnings -l /usr/share/man/man1/receptor.1.gz'

step man-receptorctl 'MANWIDTH=80 man --warnings -l /usr/share/man/man1/receptorctl.1.gz'

step man-path 'man -w receptor receptorctl'

step core 'cd / && python3 -c "
from receptor._core import codec, highwayhash, routing
for twin in (codec, highwayhash, routing):
    print(twin._twin.__name__)
"'

# The service as systemd would run it: the unit's User=, RuntimeDirectory= and
# StateDirectory=, its ExecStartPre= then ExecStart= (read from the installed unit). The
# administrator's edits first: a node ID, and the listener on loopback only.
unit=/lib/systemd/system/receptor.service
step unit 'grep -E "^(User|Group|ExecStartPre|ExecStart|RuntimeDirectory|StateDirectory)=" '"$unit"

step configure 'set -e
sed -i "s/^    # id: node1\$/    id: packaged-node/" /etc/receptor/receptor.conf
sed -i "s/^    port: 27199\$/    port: 27199\n    bindaddr: 127.0.0.1/" /etc/receptor/receptor.conf
grep -q "id: packaged-node" /etc/receptor/receptor.conf
grep -q "bindaddr: 127.0.0.1" /etc/receptor/receptor.conf
install -d -o receptor -g receptor -m 0750 /run/receptor /var/lib/receptor'

as_receptor='setpriv --reuid=receptor --regid=receptor --init-groups --reset-env'

step execstartpre "$as_receptor"' sh -c "$(sed -n "s/^ExecStartPre=//p" '"$unit"')"'

echo "### step start"
start=$(sed -n 's/^ExecStart=//p' "$root$unit")
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
    unshare --net /bin/sh -c "ip link set lo up && exec $as_receptor $start" \
    >"$work/daemon.log" 2>&1 &
daemon=$!
tries=0
until [ -S "$root/run/receptor/receptor.sock" ] || [ $tries -ge 300 ]; do
    if ! kill -0 "$daemon" 2>/dev/null; then
        break
    fi
    tries=$((tries + 1))
    sleep 0.1
done
echo "daemon user: $(chroot "$root" stat -c %U "/proc/$daemon")"
echo "### rc $([ -S "$root/run/receptor/receptor.sock" ] && echo 0 || echo 1)"

step socket 'stat -c "%n %U:%G %a" /run/receptor/receptor.sock'

step status 'receptorctl --socket /run/receptor/receptor.sock status'

step work-list 'receptorctl --socket /run/receptor/receptor.sock work list'

echo "### step stop"
kill -TERM "$daemon"
wait "$daemon"
echo "### rc $?"

echo "### step daemon-log"
cat "$work/daemon.log"
echo "### rc 0"

# ExecStartPre= refuses a broken configuration, naming the file and the entity.
step broken 'set -e
cp /etc/receptor/receptor.conf /tmp/good.conf
printf "%s\n" "- tls-server:" "    name: mesh" "    cert: /etc/receptor/missing.crt" \
    "    key: /etc/receptor/missing.key" >> /etc/receptor/receptor.conf
set +e
'"$as_receptor"' sh -c "$(sed -n "s/^ExecStartPre=//p" '"$unit"')"
rc=$?
cp /tmp/good.conf /etc/receptor/receptor.conf
exit $rc'

step purge 'DEBIAN_FRONTEND=noninteractive apt-get purge -y receptor python3-receptor'

step after-purge 'ls -d /etc/receptor /var/lib/receptor /usr/bin/receptor 2>&1; getent passwd receptor'
