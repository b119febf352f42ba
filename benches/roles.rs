//! Role-mapping evaluation per login with 10, 100 and 1,000 mappings (target: < 50 µs at
//! 1,000 on one core). Run: `cargo bench --bench roles`.
//!
//! The mappings mix every rule kind: exact group matches inside `all` with `realm.name`,
//! group wildcards, username regular expressions, DN sub-trees, metadata wildcards, username
//! lists, `except`, and role templates. The user has a DN, 10 groups and 6 metadata claims; a
//! handful of mappings match.

use oidc_realm::roles::{RoleMapper, RoleMapping, UserModel};
use serde_json::{json, Map, Value};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

// The server binary runs on mimalloc (src/main.rs); measure with the same allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn mapping(i: usize) -> Value {
    let rules = match i % 10 {
        0 => json!({"field": {"groups": format!("team-{i}-*")}}),
        1 => json!({"field": {"username": format!("/user{i}[0-9]+/")}}),
        2 => json!({"field": {"dn": format!("*,ou=dept{i},dc=example,dc=com")}}),
        3 => json!({"field": {"metadata.oidc(email)": format!("*@dept{i}.example.com")}}),
        4 => json!({"field": {"username": [format!("admin{i}"), format!("ops{i}"), "root"]}}),
        5 => json!({"all": [
            {"field": {"realm.name": "oidc1"}},
            {"field": {"groups": format!("team-{i}")}},
            {"except": {"field": {"metadata.oidc(email_verified)": false}}}
        ]}),
        6 => json!({"any": [
            {"field": {"groups": format!("cn=g{i},ou=groups,dc=example,dc=com")}},
            {"field": {"metadata.oidc(level)": i as i64}}
        ]}),
        _ => json!({"all": [
            {"field": {"realm.name": "oidc1"}},
            {"field": {"groups": format!("team-{i}")}}
        ]}),
    };
    if i % 50 == 7 {
        json!({"enabled": true, "rules": rules, "role_templates": [
            {"template": {"source": "_user_{{username}}"}},
            {"template": {"source": "{{#tojson}}groups{{/tojson}}"}, "format": "json"}
        ]})
    } else {
        json!({"enabled": true, "rules": rules, "roles": [format!("role-{i}"), "common"]})
    }
}

fn user() -> UserModel {
    let mut metadata = Map::new();
    metadata.insert("oidc(sub)".into(), json!("00u1abcd"));
    metadata.insert("oidc(iss)".into(), json!("https://op.example.org"));
    metadata.insert("oidc(email)".into(), json!("james.wong@dept3.example.com"));
    metadata.insert("oidc(email_verified)".into(), json!(true));
    metadata.insert("oidc(level)".into(), json!(16));
    metadata.insert("oidc(amr)".into(), json!(["pwd", "otp"]));
    UserModel {
        username: "user11234".into(),
        dn: Some("CN=James Wong,OU=Dept2,DC=Example,DC=com".into()),
        groups: (0..10)
            .map(|g| match g {
                0 => "team-15".to_string(),
                1 => "team-10-eu".to_string(),
                2 => "cn=g26,ou=groups,dc=example,dc=com".to_string(),
                3 => "team-57".to_string(),
                g => format!("Group-Number-{g}"),
            })
            .collect(),
        metadata,
        realm_name: "oidc1".into(),
    }
}

fn measure(n: usize) {
    let started = Instant::now();
    let mappings: Vec<Arc<RoleMapping>> = (0..n)
        .map(|i| Arc::new(RoleMapping::parse(&format!("m{i}"), &mapping(i), "").unwrap()))
        .collect();
    let compile = started.elapsed();
    let mapper = RoleMapper::new(Vec::new(), mappings);
    let u = user();
    let roles = mapper.roles_for(&u);
    // Warm up, then time batches and keep the median batch.
    let iterations = (200_000 / n).max(200);
    for _ in 0..iterations / 10 {
        black_box(mapper.roles_for(black_box(&u)));
    }
    let mut samples: Vec<Duration> = (0..15)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iterations {
                black_box(mapper.roles_for(black_box(&u)));
            }
            t.elapsed() / iterations as u32
        })
        .collect();
    samples.sort();
    println!(
        "{n:>5} mappings: median {:>8.2} µs per login (min {:>8.2}, max {:>8.2}); {} roles granted; compiling all took {:.2} ms",
        samples[7].as_nanos() as f64 / 1000.0,
        samples[0].as_nanos() as f64 / 1000.0,
        samples[14].as_nanos() as f64 / 1000.0,
        roles.len(),
        compile.as_secs_f64() * 1000.0,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this once, quickly.
    if std::env::args().any(|a| a == "--test") {
        measure(10);
        return;
    }
    for n in [10, 100, 1_000] {
        measure(n);
    }
}
