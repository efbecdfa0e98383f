//! What auth costs a test: a plain Range, a Range carrying a token, and Authenticate followed
//! by a Range, through etcd-client over loopback, in one run: `cargo bench --bench auth`.
//!
//! Passwords are checked with a salted SHA-256 rather than etcd's bcrypt (cost 10, tens of
//! milliseconds per check), so logging in should cost about one more round trip.

use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};
use test_etcd::TestEtcd;

const ROUNDS: u32 = 2_000;

const FIXTURE: &str = r#"{"kvs": [{"key": "app/k", "value": "v"}],
 "auth": {"enabled": true,
  "roles": [{"name": "app", "permissions": [{"prefix": "app/", "type": "READWRITE"}]}],
  "users": [{"name": "root", "password": "rootpw", "roles": ["root"]},
            {"name": "alice", "password": "alicepw", "roles": ["app"]}]}}"#;

/// Mean time of one `f` over `ROUNDS` runs, after a warm-up.
async fn mean<F, Fut>(mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..ROUNDS / 10 {
        f().await;
    }
    let started = Instant::now();
    for _ in 0..ROUNDS {
        f().await;
    }
    started.elapsed() / ROUNDS
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let plain = TestEtcd::builder()
        .fixture_str(r#"{"app/k": "v"}"#)
        .start()?;
    let secured = TestEtcd::builder().fixture_str(FIXTURE).start()?;

    let mut client = Client::connect(plain.endpoints(), None).await?;
    let get = mean(|| {
        let mut c = client.clone();
        async move {
            c.get("app/k", None).await.expect("get");
        }
    })
    .await;
    println!("Range, auth off:                {get:?} (baseline)");

    let login = ConnectOptions::new().with_user("alice", "alicepw");
    client = Client::connect(secured.endpoints(), Some(login)).await?;
    let with_token = mean(|| {
        let mut c = client.clone();
        async move {
            c.get("app/k", None).await.expect("get");
        }
    })
    .await;
    println!(
        "Range with a token:             {with_token:?} ({:.2}x)",
        with_token.as_secs_f64() / get.as_secs_f64()
    );

    let login_and_get = mean(|| {
        let mut c = client.clone();
        async move {
            c.update_user(Some(("alice".to_owned(), "alicepw".to_owned())))
                .await
                .expect("authenticate");
            c.get("app/k", None).await.expect("get");
        }
    })
    .await;
    println!(
        "Authenticate, then Range:       {login_and_get:?} ({:.2}x)",
        login_and_get.as_secs_f64() / get.as_secs_f64()
    );
    println!(
        "  the login alone:              {:?} ({:.2}x a Range)",
        login_and_get.saturating_sub(with_token),
        login_and_get.saturating_sub(with_token).as_secs_f64() / get.as_secs_f64()
    );
    Ok(())
}
