//! The shipped deployment files are safe by default: only Tollgate's port is published, every
//! data store is on an internal network behind a password or API key, and the image does not
//! run as root.

use serde_yaml::Value;

use crate::repo_root;

fn compose() -> Value {
    let text = std::fs::read_to_string(repo_root().join("docker-compose.yml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

#[test]
fn compose_publishes_only_tollgate_and_locks_every_store() {
    let compose = compose();
    let services = compose["services"].as_mapping().unwrap();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        if name == "tollgate" {
            assert_eq!(service["ports"][0], Value::from("8080:8080"));
            continue;
        }
        assert!(
            service.get("ports").is_none(),
            "{name} publishes a port: {:?}",
            service["ports"]
        );
        assert_eq!(
            service["networks"],
            serde_yaml::from_str::<Value>("[internal]").unwrap(),
            "{name} must be on the internal network only"
        );
    }
    assert_eq!(
        compose["networks"]["internal"]["internal"],
        Value::from(true)
    );
    let secret_set = |value: &Value| value.as_str().is_some_and(|v| v.contains(":?set "));
    assert!(secret_set(
        &services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    ));
    assert!(secret_set(
        &services["qdrant"]["environment"]["QDRANT__SERVICE__API_KEY"]
    ));
    let redis = serde_yaml::to_string(&services["redis"]["command"]).unwrap();
    assert!(redis.contains("--requirepass") && redis.contains(":?set REDIS_PASSWORD"));
    assert!(secret_set(
        &services["tollgate"]["environment"]["TOLLGATE_METRICS_TOKEN"]
    ));
}

#[test]
fn the_image_runs_as_an_unprivileged_user() {
    let dockerfile = std::fs::read_to_string(repo_root().join("infra/Dockerfile")).unwrap();
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("USER "))
        .expect("the final stage names a USER");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "{user}"
    );
}
