//! `tagward healthcheck`: the container image's HEALTHCHECK (the image has no shell and no curl).

/// `/healthz` of every listener this container may run: the gateway's (`TAGWARD_GATEWAY_LISTEN`)
/// when set, and the portal's (`TAGWARD_ADDR`, default `127.0.0.1:3000`), on loopback. One image
/// runs either, with both set in its environment; only the running one answers.
fn local_healthz() -> Vec<String> {
    let gateway = std::env::var("TAGWARD_GATEWAY_LISTEN").ok();
    let serve = std::env::var("TAGWARD_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    gateway
        .into_iter()
        .chain([serve])
        .filter_map(|listen| listen.parse::<std::net::SocketAddr>().ok())
        .map(|address| {
            let ip = if address.ip().is_unspecified() { std::net::Ipv4Addr::LOCALHOST.into() } else { address.ip() };
            format!("http://{}/healthz", std::net::SocketAddr::new(ip, address.port()))
        })
        .collect()
}

/// Succeeds when one of the URLs (`--url`, else [`local_healthz`]) answers 2xx within 3 s.
pub async fn healthcheck(url: Option<String>) -> anyhow::Result<()> {
    use hyper_util::client::legacy::Client;
    let client =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<http_body_util::Empty<bytes::Bytes>>();
    let mut failures = Vec::new();
    for url in url.map_or_else(local_healthz, |url| vec![url]) {
        let Ok(uri) = url.parse::<hyper::Uri>() else {
            failures.push(format!("`{url}` is not a URL"));
            continue;
        };
        match tokio::time::timeout(std::time::Duration::from_secs(3), client.get(uri)).await {
            Ok(Ok(response)) if response.status().is_success() => return Ok(()),
            Ok(Ok(response)) => failures.push(format!("{url} answered {}", response.status())),
            Ok(Err(error)) => failures.push(format!("{url}: {error}")),
            Err(_) => failures.push(format!("{url} did not answer within 3 s")),
        }
    }
    anyhow::bail!("unhealthy: {}", failures.join("; "))
}
