//! `tagward gateway` started in the test's own process, over a test database, in front of a
//! registry: what every gateway test starts from.

use crate::registry::Registry;
use crate::TestDb;
use std::net::SocketAddr;

/// A gateway over `db` in front of `registry`; returns where it listens.
pub async fn gateway_for(db: &TestDb, registry: &Registry) -> SocketAddr {
    gateway_with(db, registry, Default::default(), Default::default()).await
}

/// A gateway with these limits.
pub async fn gateway_with(
    db: &TestDb,
    registry: &Registry,
    listener: tagward::config::ListenerConfig,
    manifests: tagward::gateway::ManifestLimits,
) -> SocketAddr {
    spawn_gateway(tagward::gateway::GatewayConfig { listener, manifests, ..gateway_config(db, registry.address) }).await
}

/// A gateway's configuration over `db` in front of the registry at `upstream`, default limits.
pub fn gateway_config(db: &TestDb, upstream: SocketAddr) -> tagward::gateway::GatewayConfig {
    tagward::gateway::GatewayConfig {
        database: tagward::config::DatabaseConfig::new(db.url.clone()),
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: format!("http://{upstream}").parse().unwrap(),
        upstream_ca: None,
        listener: Default::default(),
        manifests: Default::default(),
        held: Default::default(),
        // The inventory's sync is tested on its own (inventory.rs).
        registry: tagward::inventory::RegistrySyncConfig { interval_seconds: 0, ..Default::default() },
        exceptions: Default::default(),
        locks: Default::default(),
    }
}

/// Starts a gateway; returns where it listens.
pub async fn spawn_gateway(config: tagward::gateway::GatewayConfig) -> SocketAddr {
    let server = tagward::gateway::GatewayServer::build(config).await.expect("gateway starts");
    let gateway = server.address();
    tokio::spawn(server.run_until_stopped());
    gateway
}
