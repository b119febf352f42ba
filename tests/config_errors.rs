use oidc_realm::config::{load, load_str};
use std::path::Path;

#[test]
fn example_config_loads() {
    let l = load(Path::new("config/oidc-realm.yml")).unwrap_or_else(|e| panic!("{e}"));
    println!("{:#?}", l);
}
