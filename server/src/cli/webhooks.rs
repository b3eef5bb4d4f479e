//! `tagward webhook`: a project's webhooks, added, listed with their last deliveries, removed,
//! resumed, tested, and a delivery sent again.

use super::{operator, ProjectArgs};
use app::policy::{WebhookEvent, WebhookFormat, WebhookSecret};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Send PROJECT's events to URL, signed with a secret (`TAGWARD_WEBHOOK_SECRET`, or one made up
    /// and printed once). Prints the webhook's id.
    Add {
        #[command(flatten)]
        project: ProjectArgs,
        url: String,
        /// Comma-separated events (`drift.found,exception.used,denial`), or `all`.
        #[arg(long, default_value = "all")]
        events: String,
        /// `cloudevents` (CloudEvents 1.0 JSON) or `slack` (`{"text": …}`).
        #[arg(long, default_value = "cloudevents")]
        format: String,
        /// The secret bodies are signed with (at least 16 characters).
        #[arg(long, env = "TAGWARD_WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Sent as the `Authorization` header (e.g. `Bearer …`).
        #[arg(long, env = "TAGWARD_WEBHOOK_AUTHORIZATION", hide_env_values = true)]
        authorization: Option<String>,
        /// Let the URL point at a loopback, private or link-local address.
        #[arg(long = "webhook-allow-private", env = "TAGWARD_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
        allow_private: bool,
    },
    /// List PROJECT's webhooks and their last deliveries.
    List {
        #[command(flatten)]
        project: ProjectArgs,
    },
    /// Remove webhook ID (and what waits to be sent to it).
    Remove {
        #[command(flatten)]
        project: ProjectArgs,
        id: i64,
    },
    /// Resume webhook ID, paused after failing too often.
    Resume {
        #[command(flatten)]
        project: ProjectArgs,
        id: i64,
    },
    /// Queue a test event for webhook ID.
    Test {
        #[command(flatten)]
        project: ProjectArgs,
        id: i64,
    },
    /// Send delivery ID again.
    Redeliver {
        #[command(flatten)]
        project: ProjectArgs,
        delivery: i64,
    },
}

pub async fn run(command: WebhookCommand) -> anyhow::Result<()> {
    let me = operator();
    match command {
        WebhookCommand::Add { project, url, events, format, secret, authorization, allow_private } => {
            let events = WebhookEvent::parse_list("--events", &events)?;
            let format = WebhookFormat::parse("--format", &format)?;
            let (secret, made_up) = match secret {
                Some(secret) => (WebhookSecret::parse("--secret", &secret)?, false),
                None => (WebhookSecret::parse("--secret", app::account::TokenSecret::generate().expose())?, true),
            };
            let authorization = match authorization {
                Some(value) => app::policy::parse_authorization("--authorization", &value)?,
                None => None,
            };
            let url = app::webhooks::reachable("url", &url, allow_private).await?;
            let project = project.open().await?;
            let spec = app::store::WebhookSpec { url, events, format, authorization };
            let id = app::store::add_webhook(&project.pool, &me, project.id, &spec, &secret).await?;
            println!("{id}");
            if made_up {
                eprintln!("secret (shown only now): {}", secret.expose());
            }
        }
        WebhookCommand::List { project } => {
            let project = project.open().await?;
            let deliveries = app::store::recent_deliveries(&project.pool, project.id, 5).await?;
            for webhook in app::store::project_webhooks(&project.pool, project.id).await? {
                let state = match webhook.paused_at {
                    Some(at) => format!("paused since {}", app::shown_time(at)),
                    None => "active".to_owned(),
                };
                println!(
                    "{}\t{}\t{}\t{}\t{state}\t{} pending\t{} failures in a row",
                    webhook.id,
                    webhook.url,
                    webhook.format.as_str(),
                    webhook.events.iter().map(|event| event.as_str()).collect::<Vec<_>>().join(","),
                    webhook.pending,
                    webhook.consecutive_failures
                );
                for delivery in deliveries.iter().filter(|delivery| delivery.endpoint_id == webhook.id) {
                    let status = delivery.last_status.map_or_else(|| "-".to_owned(), |status| status.to_string());
                    println!(
                        "  delivery {}\t{}\t{}\t{} attempts\tstatus {status}\t{}\t{}",
                        delivery.id,
                        delivery.event,
                        delivery.state,
                        delivery.attempts,
                        app::shown_time(delivery.created_at),
                        delivery.last_error.as_deref().unwrap_or("")
                    );
                }
            }
        }
        WebhookCommand::Remove { project, id } => {
            let project = project.open().await?;
            app::store::remove_webhook(&project.pool, &me, project.id, id).await?;
            println!("removed webhook {id}");
        }
        WebhookCommand::Resume { project, id } => {
            let project = project.open().await?;
            app::store::resume_webhook(&project.pool, &me, project.id, id).await?;
            println!("resumed webhook {id}");
        }
        WebhookCommand::Test { project, id } => {
            let project = project.open().await?;
            let delivery = app::store::send_test_event(&project.pool, &me, project.id, id).await?;
            println!("queued test delivery {delivery}");
        }
        WebhookCommand::Redeliver { project, delivery } => {
            let project = project.open().await?;
            app::store::redeliver(&project.pool, &me, project.id, delivery).await?;
            println!("delivery {delivery} queued again");
        }
    }
    Ok(())
}
