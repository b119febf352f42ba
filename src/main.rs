use clap::Parser;

// mimalloc: the request path allocates small objects from several threads; glibc's malloc
// costs ~15% of a login there (measured with perf, see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (mimalloc.h, v2: the 16th option).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // Give freed memory back to the system at once instead of after 10 ms: while the bearer
    // cache evicts (every check a miss, each inserting and dropping an entry) the delay kept
    // ~10 MiB more resident at peak, at no measurable cost in throughput (bench/scale.sh,
    // docs/performance.md).
    // SAFETY: setting a documented option to a documented value (0 = purge immediately); it
    // is read by the allocator on its next purge and is safe to set at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    let cli = oidc_realm::cli::Cli::parse();
    std::process::exit(oidc_realm::cli::run(cli));
}
