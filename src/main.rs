use clap::Parser;

fn main() {
    let cli = oidc_realm::cli::Cli::parse();
    std::process::exit(oidc_realm::cli::run(cli));
}
