//! Networks: overlapping subnets, addresses inside them, networks that do
//! not exist, host ports published twice.

use super::*;

#[test]
fn rejects_overlapping_subnets() {
    let e = errs(&format!(
        "{HEAD}[networks.a]\nsubnet = \"10.1.0.0/16\"\n[networks.b]\nsubnet = \"10.1.2.0/24\"\n"
    ));
    assert_eq!(
        e,
        ["5:10: networks.b.subnet: 10.1.2.0/24 overlaps 10.1.0.0/16 of network \"a\""]
    );
}

#[test]
fn rejects_ip_outside_subnet_gateway_and_duplicates() {
    let net = "[networks.n]\nsubnet = \"10.1.0.0/24\"\n";
    let c = |name: &str, ip: &str| {
        format!(
            "[containers.{name}]\nimage = \"host\"\ncommand = [\"x\"]\nnetworks = {{ n = {{ ip = \"{ip}\" }} }}\n"
        )
    };
    let e = errs(&format!("{HEAD}{net}{}", c("a", "10.2.0.5")));
    assert_eq!(
        e,
        [
            "7:25: containers.a.networks: 10.2.0.5 is outside the subnet 10.1.0.0/24 of network \"n\""
        ]
    );
    has(
        &errs(&format!("{HEAD}{net}{}", c("a", "10.1.0.1"))),
        "is the gateway",
    );
    has(
        &errs(&format!("{HEAD}{net}{}", c("a", "10.1.0.255"))),
        "broadcast",
    );
    let e = errs(&format!(
        "{HEAD}{net}{}{}",
        c("a", "10.1.0.5"),
        c("b", "10.1.0.5")
    ));
    assert_eq!(
        e,
        ["11:25: containers.b.networks: 10.1.0.5 is already given to container \"a\""]
    );
    has(
        &errs(&format!(
            "{HEAD}[networks.n]\nsubnet = \"10.1.0.0/24\"\ngateway = \"10.9.0.1\"\n"
        )),
        "not a usable address",
    );
}

#[test]
fn rejects_missing_network() {
    let e = errs(&format!(
        "{HEAD}[networks.backend]\nsubnet = \"10.1.0.0/24\"\n[containers.a]\nimage = \"host\"\ncommand = [\"x\"]\nnetworks = [\"backnd\"]\n"
    ));
    assert_eq!(
        e,
        [
            "7:13: containers.a.networks: no network named \"backnd\" in [networks]; did you mean \"backend\"?"
        ]
    );
    has(
        &errs(&container("networks = [\"host\", \"x\"]\n")),
        "cannot be combined",
    );
    has(
        &errs(&format!(
            "{HEAD}[networks.host]\nsubnet = \"10.1.0.0/24\"\n"
        )),
        "reserved network name",
    );
}

#[test]
fn rejects_duplicate_host_port() {
    let net = "[networks.n]\nsubnet = \"10.1.0.0/24\"\n";
    let c = |name: &str, p: &str| {
        format!(
            "[containers.{name}]\nimage = \"host\"\ncommand = [\"x\"]\nnetworks = [\"n\"]\nports = [\"{p}\"]\n"
        )
    };
    let e = errs(&format!(
        "{HEAD}{net}{}{}",
        c("a", "8080:80"),
        c("b", "127.0.0.1:8080:81")
    ));
    assert_eq!(
        e,
        ["13:10: containers.b.ports: host port 8080 is already published by container \"a\""]
    );
    // Different protocols or different addresses do not clash.
    ok(&format!(
        "{HEAD}{net}{}{}",
        c("a", "8080:80/udp"),
        c("b", "8080:80")
    ));
    ok(&format!(
        "{HEAD}{net}{}{}",
        c("a", "127.0.0.1:80:80"),
        c("b", "127.0.0.2:80:80")
    ));
    has(
        &errs(&container("ports = [\"80:80\"]\n")),
        "ports need a bridge network",
    );
}
