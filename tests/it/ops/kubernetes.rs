//! The Kubernetes manifests (issue 18): valid against the Kubernetes
//! schemas, offline and strictly (kubernetes-validate, pinned in
//! scripts/test-deps.sh); their cluster file is the repository's, their
//! router config exactly what `tmuxd router-config --nginx` makes of it,
//! and their tmuxd config has no key tmuxd does not know.

use std::path::Path;
use std::process::Command;

use crate::common::BIN;

const VALIDATE: &str = "/opt/tmuxd-test/kubernetes-validate-1.37.0/bin/kubernetes-validate";
const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes/tmuxd.yaml");
const CLUSTER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/kubernetes/cluster.toml"
);

fn validate(file: &Path) -> (bool, String) {
    let out = Command::new(VALIDATE)
        .args(["--strict", "-k", "1.37.0"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{VALIDATE}: {e} (scripts/test-deps.sh installs it)"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// `key` of ConfigMap `name` in the manifests (read with the PyYAML that
/// kubernetes-validate brings).
fn config_map(name: &str, key: &str) -> String {
    let python = Path::new(VALIDATE).with_file_name("python3");
    let script = format!(
        "import sys, yaml\nfor d in yaml.safe_load_all(open(sys.argv[1])):\n    if d['kind'] == 'ConfigMap' and d['metadata']['name'] == '{name}':\n        sys.stdout.write(d['data']['{key}'])\n"
    );
    crate::common::stdout_of(Command::new(python).args(["-c", &script, MANIFESTS]))
}

#[test]
fn the_kubernetes_manifests_are_valid_and_match_the_cluster() {
    let (ok, text) = validate(Path::new(MANIFESTS));
    assert!(ok, "{text}");
    for resource in [
        "configmap/tmuxd-config",
        "service/tmuxd",
        "statefulset/tmuxd",
        "configmap/tmuxd-router",
        "deployment/tmuxd-router",
        "service/tmuxd-router",
        "ingress/tmuxd",
    ] {
        assert!(
            text.contains(&format!("passed for resource {resource} ")),
            "{resource}: {text}"
        );
    }
    // The validator does refuse what is wrong (a misspelt field, a string
    // for a number).
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    let manifests = std::fs::read_to_string(MANIFESTS).unwrap();
    for (from, to) in [
        ("containerPort: 7681", "contanerPort: 7681"),
        ("replicas: 3", "replicas: three"),
    ] {
        assert!(manifests.contains(from));
        std::fs::write(&broken, manifests.replacen(from, to, 1)).unwrap();
        let (ok, text) = validate(&broken);
        assert!(!ok, "{to} passed: {text}");
    }

    // The ConfigMaps agree with the repository and the generator.
    let cluster = std::fs::read_to_string(CLUSTER).unwrap();
    assert_eq!(config_map("tmuxd-config", "cluster.toml"), cluster);
    let generated = crate::common::stdout_of(
        Command::new(BIN)
            .args([
                "router-config",
                "--nginx",
                "--cluster",
                "deploy/kubernetes/cluster.toml",
                "--listen",
                "8080",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR")),
    );
    assert_eq!(
        config_map("tmuxd-router", "tmuxd.conf"),
        generated,
        "regenerate the router ConfigMap from deploy/kubernetes/cluster.toml"
    );
    // Every key of the node config is one tmuxd knows (what is missing
    // here is the pod's: its files and host name).
    let config = dir.path().join("tmuxd.toml");
    let cluster_file = dir.path().join("cluster.toml");
    std::fs::write(&cluster_file, &cluster).unwrap();
    std::fs::write(
        &config,
        config_map("tmuxd-config", "tmuxd.toml")
            .replace("/etc/tmuxd/cluster.toml", cluster_file.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("check-config")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("(syntax)") && !err.contains("unknown field"),
        "{err}"
    );
    assert!(
        err.contains("cluster.node"),
        "the pod's host name is its node: {err}"
    );
}
