//! wrk runs and what their `--latency` output says.

use anyhow::Context;
use std::time::Duration;

/// What one wrk run measured.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Responses that were not 2xx/3xx, plus socket errors.
    pub failures: u64,
}

/// One wrk run against `url`.
pub struct Wrk<'a> {
    pub url: &'a str,
    pub connections: usize,
    pub duration: Duration,
    /// A Lua script (relative to the repository root) and its environment.
    pub script: Option<&'a str>,
    pub env: Vec<(&'a str, String)>,
    pub headers: Vec<String>,
}

impl<'a> Wrk<'a> {
    pub fn new(url: &'a str, connections: usize, duration: Duration) -> Self {
        Self { url, connections, duration, script: None, env: Vec::new(), headers: Vec::new() }
    }

    pub fn script(mut self, script: &'a str, env: Vec<(&'a str, String)>) -> Self {
        self.script = Some(script);
        self.env = env;
        self
    }

    pub fn header(mut self, header: String) -> Self {
        self.headers.push(header);
        self
    }

    pub async fn run(&self) -> anyhow::Result<Load> {
        let threads = self.connections.min(2);
        let mut command = tokio::process::Command::new("wrk");
        command
            .arg(format!("-t{threads}"))
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}s", self.duration.as_secs().max(1)))
            .arg("--latency")
            .envs(self.env.iter().map(|(key, value)| (key, value)));
        if let Some(script) = self.script {
            command.arg("-s").arg(script);
        }
        for header in &self.headers {
            command.arg("-H").arg(header);
        }
        let output = command.arg(self.url).output().await.context("running wrk (is it installed?)")?;
        let text = String::from_utf8_lossy(&output.stdout);
        anyhow::ensure!(output.status.success(), "wrk failed: {}", String::from_utf8_lossy(&output.stderr));
        parse(&text).with_context(|| format!("reading wrk's output:\n{text}"))
    }
}

fn parse(text: &str) -> Option<Load> {
    let line_after =
        |prefix: &str| text.lines().map(str::trim).find_map(|line| line.strip_prefix(prefix)).map(str::trim);
    let requests_per_second = line_after("Requests/sec:")?.parse().ok()?;
    let p50_ms = duration_ms(line_after("50%")?)?;
    let p99_ms = duration_ms(line_after("99%")?)?;
    let non_2xx: u64 = line_after("Non-2xx or 3xx responses:").and_then(|n| n.parse().ok()).unwrap_or(0);
    // "Socket errors: connect 0, read 0, write 0, timeout 12"
    let socket_errors: u64 = line_after("Socket errors:")
        .map(|errors| errors.split(',').filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    Some(Load { requests_per_second, p50_ms, p99_ms, failures: non_2xx + socket_errors })
}

/// `812.00us`, `1.23ms`, `2.01s` in milliseconds.
fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_latency_run() {
        let text = "Running 10s test @ http://127.0.0.1:3900/healthz\n  2 threads and 64 connections\n  \
            Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   1.10ms  400.00us  12.00ms   90.00%\n  \
            Latency Distribution\n     50%  812.00us\n     75%    1.20ms\n     90%    1.50ms\n     99%    2.01s\n  \
            123 requests in 10.00s, 1.00MB read\n  Socket errors: connect 0, read 1, write 0, timeout 2\n  \
            Non-2xx or 3xx responses: 4\nRequests/sec:  61764.12\nTransfer/sec:      7.00MB\n";
        let load = parse(text).unwrap();
        assert_eq!(load.requests_per_second, 61764.12);
        assert!((load.p50_ms - 0.812).abs() < 1e-9, "{}", load.p50_ms);
        assert!((load.p99_ms - 2010.0).abs() < 1e-9, "{}", load.p99_ms);
        assert_eq!(load.failures, 7);
    }
}
