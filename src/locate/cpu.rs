//! Which build of whisper.cpp this CPU can run. A platform package carries
//! one build per CPU variant (`bin/<variant>/`, the names of
//! scripts/targets.mjs); the best one whose instructions the CPU has wins.

/// Known variants, best first, with the CPU features each one's build uses.
const VARIANTS: &[(&str, &[&str])] = &[
    (
        "x86-64-v4",
        &[
            "sse4.2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512cd", "avx512vl",
            "avx512dq", "avx512bw",
        ],
    ),
    (
        "x86-64-v3",
        &["sse4.2", "avx", "avx2", "fma", "f16c", "bmi2"],
    ),
    ("x86-64-v2", &["sse4.2"]),
    ("apple-arm64", &["apple-arm64"]),
    ("armv8-a", &["neon"]),
];

/// Whether this machine has a CPU feature, by the names above.
fn has(feature: &str) -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        match feature {
            "sse4.2" => std::arch::is_x86_feature_detected!("sse4.2"),
            "avx" => std::arch::is_x86_feature_detected!("avx"),
            "avx2" => std::arch::is_x86_feature_detected!("avx2"),
            "fma" => std::arch::is_x86_feature_detected!("fma"),
            "f16c" => std::arch::is_x86_feature_detected!("f16c"),
            "bmi2" => std::arch::is_x86_feature_detected!("bmi2"),
            "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
            "avx512cd" => std::arch::is_x86_feature_detected!("avx512cd"),
            "avx512vl" => std::arch::is_x86_feature_detected!("avx512vl"),
            "avx512dq" => std::arch::is_x86_feature_detected!("avx512dq"),
            "avx512bw" => std::arch::is_x86_feature_detected!("avx512bw"),
            _ => false,
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        match feature {
            // Part of armv8-a on every 64-bit Arm that Node runs on.
            "neon" => true,
            "apple-arm64" => cfg!(target_os = "macos"),
            _ => false,
        }
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = feature;
        false
    }
}

/// The best of `available` (variant folder names) for a CPU that has the
/// features `has` says it has. Unknown names are ignored.
pub fn best<'a>(available: &[&'a str], has: impl Fn(&str) -> bool) -> Option<&'a str> {
    VARIANTS
        .iter()
        .filter(|(_, needs)| needs.iter().all(|f| has(f)))
        .find_map(|(name, _)| available.iter().find(|a| *a == name).copied())
}

/// The best of `available` for this machine's CPU.
pub fn best_for_this_cpu<'a>(available: &[&'a str]) -> Option<&'a str> {
    best(available, has)
}

#[cfg(test)]
mod tests {
    use super::*;

    const X86: [&str; 3] = ["x86-64-v2", "x86-64-v3", "x86-64-v4"];

    fn cpu(features: &'static [&'static str]) -> impl Fn(&str) -> bool {
        move |f| features.contains(&f)
    }

    #[test]
    fn a_cpu_with_only_sse4_2_gets_the_baseline_build() {
        // Nehalem (2008): SSE4.2, no AVX.
        assert_eq!(best(&X86, cpu(&["sse4.2"])), Some("x86-64-v2"));
    }

    #[test]
    fn avx2_and_avx512_cpus_get_their_builds() {
        let haswell = &["sse4.2", "avx", "avx2", "fma", "f16c", "bmi2"];
        assert_eq!(best(&X86, cpu(haswell)), Some("x86-64-v3"));
        let skylake_x = &[
            "sse4.2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512cd", "avx512vl",
            "avx512dq", "avx512bw",
        ];
        assert_eq!(best(&X86, cpu(skylake_x)), Some("x86-64-v4"));
        // A build that is not there is not chosen.
        assert_eq!(
            best(&["x86-64-v2", "x86-64-v3"], cpu(skylake_x)),
            Some("x86-64-v3")
        );
    }

    #[test]
    fn avx_without_avx2_is_not_enough_for_v3() {
        // Sandy Bridge: AVX but no AVX2, FMA or F16C.
        assert_eq!(best(&X86, cpu(&["sse4.2", "avx"])), Some("x86-64-v2"));
    }

    #[test]
    fn a_cpu_below_every_build_and_unknown_names_get_nothing() {
        assert_eq!(best(&X86, cpu(&[])), None);
        assert_eq!(best(&["riscv64"], cpu(&["sse4.2"])), None);
    }

    #[test]
    fn this_machine_runs_at_least_its_baseline() {
        let here = best_for_this_cpu(&["x86-64-v2", "armv8-a", "apple-arm64"]);
        if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
            assert!(here.is_some());
        }
    }
}
