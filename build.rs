//! Builds volsafe-tar (`src/streamer`), the program a streaming helper
//! container runs, and leaves it in OUT_DIR for `include_bytes!`.
//!
//! It is built with std alone and linked statically, since the helper image
//! holds no libc. Where that cannot be done (not Linux, an architecture
//! whose flag values it does not know, no static libc), an
//! empty file takes its place and volsafe reads every volume through the
//! Engine's archive endpoint.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    for source in [
        "src/streamer/main.rs",
        "src/streamer/tarstream.rs",
        "src/streamer/extract.rs",
        "src/streamer/extract/tests.rs",
        "src/archive/tarstream/entry.rs",
        "src/archive/tarstream/error.rs",
        "src/archive/tarstream/header.rs",
        "src/archive/tarstream/read.rs",
        "src/archive/tarstream/write.rs",
    ] {
        println!("cargo:rerun-if-changed={source}");
    }
    let out =
        PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("volsafe-tar");
    // volsafe-tar names Linux's open flags and errno values itself (it has
    // std alone); they are those of these 64-bit architectures. Not 32-bit
    // ones: their glibc `openat` refuses files of 2 GiB without
    // `O_LARGEFILE`, whose value differs again.
    let arch_known = matches!(
        env::var("CARGO_CFG_TARGET_ARCH").as_deref(),
        Ok("x86_64" | "aarch64" | "riscv64" | "powerpc64" | "s390x" | "loongarch64")
    );
    let linux = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let built = linux && arch_known && build(&out);
    if !built {
        println!("cargo:warning=volsafe-tar was not built: volsafe will read volumes through the Engine's archive endpoint only");
        std::fs::write(&out, b"").expect("OUT_DIR is writable");
    }
}

fn build(out: &std::path::Path) -> bool {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let status = Command::new(rustc)
        .args([
            "--edition=2021",
            "--crate-name=volsafe_tar",
            "--crate-type=bin",
        ])
        .args(["--target", &target])
        .args([
            "-C",
            "opt-level=3",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
        ])
        .args(["-C", "target-feature=+crt-static", "-C", "codegen-units=1"])
        .arg("-o")
        .arg(out)
        .arg("src/streamer/main.rs")
        .status();
    match status {
        Ok(s) if s.success() => true,
        Ok(s) => {
            println!("cargo:warning=building volsafe-tar failed ({s})");
            false
        }
        Err(e) => {
            println!("cargo:warning=cannot run rustc to build volsafe-tar: {e}");
            false
        }
    }
}
