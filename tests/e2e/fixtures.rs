//! Shell scripts (busybox `sh`, run by `common::fill` with the volume at
//! `/v`, as root) that build the fixture volumes of the issue and of
//! shared/CASES.md.
//!
//! Scripts set explicit mtimes last, directories after their content and
//! the root after everything, because creating an entry touches its
//! parent's mtime.

use std::path::Path;

use crate::common::{path_str, quote, sh};

/// The volume root is uid 999 and mode 0700, like a Postgres data volume
/// (C03).
pub const ROOT_999_0700: &str = "chown 999:999 /v && chmod 0700 /v\n";

/// A 200-byte ASCII name (the file) and a 200-byte unicode name (100 × é).
pub fn long_names() -> (String, String) {
    let ascii = format!("{}.txt", "n".repeat(196));
    let unicode = "é".repeat(100);
    assert_eq!(ascii.len(), 200);
    assert_eq!(unicode.len(), 200);
    (ascii, unicode)
}

/// Every special entry of the issue except the large data: C02, C04, C19,
/// hard links, a FIFO, unicode and 200-byte names, a deep path, empty files
/// and directories, setuid/setgid/sticky modes, odd owners and mtimes.
pub fn special_entries() -> String {
    let (ascii, unicode) = long_names();
    let deep = [
        "d".repeat(60),
        "e".repeat(60),
        "f".repeat(60),
        "g".repeat(60),
    ]
    .join("/");
    format!(
        r#"set -eu
cd /v

# C02: a private directory of uid 999, with files and a subdirectory.
mkdir -p pg/data/base
echo 'postgres' > pg/data/PG_VERSION
echo 'secret' > pg/data/base/1
chown -R 999:999 pg/data
chmod 0700 pg/data pg/data/base
chmod 0600 pg/data/PG_VERSION pg/data/base/1

# C04: links are stored as links, never followed.
mkdir -p links
dd if=/dev/urandom of=links/large.bin bs=64k count=32 status=none
ln -s large.bin links/to-large
ln -s does/not/exist links/dangling
ln -s /etc/passwd links/passwd

# C19: relative links that climb out of the volume, and one to "-1".
mkdir -p app/current
ln -s ../../var/log/app app/current/logs
ln -s ../../../releases/42 app/current/cur
ln -s -- -1 app/dash
echo 'not an option' > ./app/-1

# Hard links, within one directory and across directories.
mkdir -p hard/a hard/b
echo 'linked twice' > hard/a/one
ln hard/a/one hard/a/two
echo 'linked thrice' > hard/a/three
ln hard/a/three hard/b/three
ln hard/a/three hard/b/also-three

# A FIFO.
mkfifo special-fifo
chmod 0640 special-fifo

# Names: unicode, spaces, quotes, a leading dash, 200 bytes, a deep path.
mkdir -p names
echo 1 > 'names/héllo wörld.txt'
echo 2 > 'names/日本語のファイル'
echo 3 > 'names/🦀 crab.rs'
echo 4 > "names/it's \"quoted\" \\ back"
echo 5 > names/-rf
echo 6 > 'names/{ascii}'
mkdir 'names/{unicode}'
echo 7 > 'names/{unicode}/{unicode}'
mkdir -p 'names/{deep}'
echo 8 > 'names/{deep}/leaf.txt'

# Empty things.
mkdir -p empty/dir empty/nested/dir
: > empty/file
: > 'empty/file with spaces'

# Modes and owners.
mkdir -p modes
echo '#!/bin/sh' > modes/setuid
chmod 4755 modes/setuid
echo '#!/bin/sh' > modes/setgid
chmod 2711 modes/setgid
mkdir modes/sticky modes/setgid-dir
chmod 1777 modes/sticky
chmod 2775 modes/setgid-dir
echo x > modes/none
chmod 0000 modes/none
echo x > modes/odd-owner
chown 1000:2000 modes/odd-owner
echo x > modes/nobody
chown 65534:65534 modes/nobody
echo x > modes/big-uid
chown 3000000:3000001 modes/big-uid
chown -h 999:999 links/dangling

# Odd mtimes: old, 1970+1 s, past 2038, and on a symlink.
mkdir -p times
echo old > times/old
touch -d '1999-12-31 23:59:59' times/old
echo epoch > times/epoch-plus-one
touch -d '1970-01-01 00:00:01' times/epoch-plus-one
echo future > times/y2100
touch -d '2100-01-01 00:00:00' times/y2100
ln -s old times/link
touch -h -d '2001-02-03 04:05:06' times/link
touch -d '2005-05-05 05:05:05' times/old-dir-content
mkdir times/old-dir
touch -d '1988-08-08 08:08:08' times/old-dir
touch -d '2010-10-10 10:10:10' empty/dir pg/data/base
"#
    )
}

/// `count` small files, one line each, spread over 100 directories.
pub fn many_files(count: usize) -> String {
    format!(
        r#"set -eu
cd /v
i=0
while [ $i -lt 100 ]; do mkdir -p many/d$i; i=$((i+1)); done
i=0
while [ $i -lt {count} ]; do
  echo "small file $i" > many/d$((i % 100))/f$i
  i=$((i+1))
done
"#
    )
}

/// A file of `mib` MiB from /dev/urandom, and a link to it (C04).
pub fn random_file(mib: usize) -> String {
    format!(
        "set -eu\ncd /v\n\
         dd if=/dev/urandom of=big.bin bs=1M count={mib} status=none\n\
         ln -s big.bin big-link\n"
    )
}

/// A unix socket at `sock/dev/log` (C01). Busybox `nc` has no `-U`, so a
/// `syslogd` chrooted into `sock/` binds it; SIGKILL leaves the socket.
pub const SOCKET: &str = r#"set -eu
cd /v
mkdir -p sock/dev
cp /bin/busybox sock/busybox
chroot /v/sock /busybox syslogd -n -O /syslog.txt &
pid=$!
i=0
while [ ! -S sock/dev/log ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
kill -9 $pid
wait $pid || true
rm -f sock/busybox sock/syslog.txt
[ -S sock/dev/log ]
"#;

/// Fixes the mtimes that creating entries disturbed: the set directories
/// and, last of all, the root.
pub const FINAL_MTIMES: &str = r#"set -eu
cd /v
touch -d '1988-08-08 08:08:08' times/old-dir
touch -d '2010-10-10 10:10:10' empty/dir pg/data/base
touch -d '2020-02-20 20:20:20' /v
"#;

/// The big round-trip volume of the issue: root uid 999 mode 0700 (C03),
/// a socket (C01), every special entry, a `mib`-MiB random file and
/// `count` small files.
pub fn big_fixture(mib: usize, count: usize) -> String {
    [
        special_entries(),
        SOCKET.to_owned(),
        random_file(mib),
        many_files(count),
        FINAL_MTIMES.to_owned(),
        ROOT_999_0700.to_owned(),
    ]
    .join("\n")
}

/// Special entries and a socket without the bulk, for the fast tests.
pub fn small_fixture() -> String {
    [
        special_entries(),
        SOCKET.to_owned(),
        FINAL_MTIMES.to_owned(),
        ROOT_999_0700.to_owned(),
    ]
    .join("\n")
}

/// A host tree with the usual difficulties, made as root.
pub fn host_tree(dir: &Path) {
    sh(&format!(
        r#"cd {}
chmod 0750 .
mkdir -p data/private empty
echo hello > data/hello.txt
head -c 3000000 /dev/urandom > data/random.bin
echo secret > data/private/key
chown -R 999:999 data/private
chmod 0700 data/private
ln -s hello.txt data/link
ln -s ../../var/log/app data/logs
ln data/hello.txt data/hard
mkfifo data/fifo
touch 'data/ünïcödé' "data/$(printf 'n%.0s' $(seq 200))"
touch -d '1999-12-31 23:59:59' data/hello.txt
touch -d '2010-10-10 10:10:10' empty
"#,
        quote(path_str(dir))
    ));
}
