//! The fixtures and the digest themselves, so a failing round trip is
//! never the harness's fault.

use std::time::Instant;

use crate::common::{digest, digest_dir, fill, fill_from_host_dir, Tree, Volume};
use crate::fixtures;

#[test]
fn fixture_digest_is_stable() {
    let vol = Volume::new("stable");
    let started = Instant::now();
    fill(&vol, &fixtures::small_fixture());
    let filled = started.elapsed();
    let first = digest(&vol);
    eprintln!(
        "small fixture: fill {filled:?}, digest {:?}",
        started.elapsed() - filled
    );

    let second = digest(&vol);
    first.assert_same(&second, "digest twice");

    // A time of its own: a plain touch within the second of the fill would
    // change nothing that the digest (mtimes to the second) can see.
    fill(&vol, "touch -d '2003-03-03 03:03:03' /v/links/large.bin");
    let touched = digest(&vol);
    assert_ne!(first, touched, "touch did not change the digest");

    fill(&vol, "echo changed > /v/names/-rf");
    assert_ne!(
        touched,
        digest(&vol),
        "new content did not change the digest"
    );
}

/// The entries the round trips depend on are really in the fixture, with
/// the attributes the listing is meant to show.
#[test]
fn fixture_holds_every_special_entry() {
    let vol = Volume::new("entries");
    fill(&vol, &fixtures::small_fixture());
    let tree = digest(&vol);
    if std::env::var_os("VSTEST_SHOW_LISTING").is_some() {
        eprintln!("{}", tree.listing);
    }
    let (ascii, unicode) = fixtures::long_names();

    let expect = [
        (".", "dir uid=999 gid=999 mode=0700 mtime=1582230020"),
        ("./sock/dev/log", "socket "),
        ("./pg/data", "dir uid=999 gid=999 mode=0700"),
        ("./pg/data/base", "mode=0700 mtime=1286705410"),
        ("./links/to-large", "-> large.bin"),
        ("./links/dangling", "symlink uid=999 gid=999"),
        ("./links/passwd", "-> /etc/passwd"),
        ("./app/current/logs", "-> ../../var/log/app"),
        ("./app/current/cur", "-> ../../../releases/42"),
        ("./app/dash", "-> -1"),
        ("./hard/b/three", "nlink=3 linkgroup=./hard/a/three"),
        ("./hard/a/two", "nlink=2 linkgroup=./hard/a/one"),
        ("./special-fifo", "fifo uid=0 gid=0 mode=0640"),
        ("./modes/setuid", "mode=4755"),
        ("./modes/setgid", "mode=2711"),
        ("./modes/sticky", "mode=1777"),
        ("./modes/none", "mode=0000"),
        ("./modes/big-uid", "uid=3000000 gid=3000001"),
        ("./times/old", "mtime=946684799"),
        ("./times/epoch-plus-one", "mtime=1 "),
        ("./times/y2100", "mtime=4102444800"),
        ("./times/link", "mtime=981173106"),
        ("./times/old-dir", "mtime=587030888"),
        ("./empty/file", "size=0"),
    ];
    for (path, needle) in expect {
        let line = tree
            .entry(path)
            .unwrap_or_else(|| panic!("no {path} in\n{}", tree.listing));
        assert!(line.contains(needle), "{path}: {line:?} lacks {needle:?}");
    }
    for name in [
        format!("./names/{ascii}"),
        format!("./names/{unicode}/{unicode}"),
    ] {
        assert!(tree.entry(&name).is_some(), "no {name}");
    }
    assert!(tree.entry("./names/日本語のファイル").is_some());
}

/// `digest_dir` (a bind-mounted host directory) and `digest` (a volume)
/// list the same tree the same way, so the interop tests can compare them.
#[test]
fn host_dir_digest_matches_volume_copy() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    fixtures::host_tree(&tree);
    let host = digest_dir(&tree);
    assert!(host.entry("./data/fifo").is_some(), "{}", host.listing);

    let vol = Volume::new("host-copy");
    fill_from_host_dir(&vol, &tree);
    // busybox tar restores neither directory nor symlink mtimes.
    mask_dir_and_link_mtimes(&host).assert_same(
        &mask_dir_and_link_mtimes(&digest(&vol)),
        "host tree copied into a volume",
    );
}

fn mask_dir_and_link_mtimes(tree: &Tree) -> Tree {
    let mut listing = String::new();
    for line in tree.listing.lines() {
        let (path, rest) = line.split_once('\t').expect("tab");
        let dir_or_link = rest.starts_with("dir ") || rest.starts_with("symlink ");
        let masked: Vec<&str> = rest
            .split(' ')
            .map(|f| match f.starts_with("mtime=") && dir_or_link {
                true => "mtime=*",
                false => f,
            })
            .collect();
        listing.push_str(&format!("{path}\t{}\n", masked.join(" ")));
    }
    Tree { listing }
}
