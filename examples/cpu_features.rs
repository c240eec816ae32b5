//! Prints the x86-64 features that gradphoto's fast paths are chosen by, as
//! the standard library detects them at run time on this CPU, on one line:
//! `sse2=true sse3=true ssse3=true sse4.1=true ... avx2=false sha=false`.
//!
//! With `--execute-avx2` it instead executes one AVX2 instruction without
//! asking first, and prints `executed an AVX2 instruction` if the CPU let it
//! (on a CPU without AVX2 the process dies of SIGILL instead).
//!
//! `scripts/qemu-check.sh` runs both under `qemu-x86_64 -cpu MODEL`: the
//! first shows that the emulated CPU hides AVX2 (and SHA, and for `qemu64`
//! SSSE3 and SSE4), so the same gradphoto binary takes its portable paths;
//! the second shows that the emulator traps AVX2 instructions for that model,
//! so a gradphoto run that completes there executed none. Uses nothing from
//! the library, so it builds without the test kit.

fn main() {
    let execute = std::env::args().skip(1).any(|a| a == "--execute-avx2");
    #[cfg(target_arch = "x86_64")]
    {
        if execute {
            // SAFETY: the instruction only writes ymm0, which is declared
            // clobbered (its low half, xmm0; the upper half is never live
            // in this function). A CPU without AVX2 raises #UD, i.e. the
            // process gets SIGILL, which is what this flag is for.
            unsafe {
                std::arch::asm!(
                    "vpaddd ymm0, ymm0, ymm0",
                    out("xmm0") _,
                    options(nomem, nostack, preserves_flags)
                );
            }
            println!("executed an AVX2 instruction");
            return;
        }
        use std::arch::is_x86_feature_detected as has;
        let features = [
            ("sse2", has!("sse2")),
            ("sse3", has!("sse3")),
            ("ssse3", has!("ssse3")),
            ("sse4.1", has!("sse4.1")),
            ("sse4.2", has!("sse4.2")),
            ("avx", has!("avx")),
            ("avx2", has!("avx2")),
            ("fma", has!("fma")),
            ("sha", has!("sha")),
        ];
        let line: Vec<String> = features
            .iter()
            .map(|(name, on)| format!("{name}={on}"))
            .collect();
        println!("{}", line.join(" "));
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = execute;
        println!("arch={} (not x86_64)", std::env::consts::ARCH);
    }
}
