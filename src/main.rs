use clap::Parser;

// mimalloc: the request path allocates small objects from several threads; glibc's malloc
// costs ~15% of a login there (measured with perf, see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = oidc_realm::cli::Cli::parse();
    std::process::exit(oidc_realm::cli::run(cli));
}
