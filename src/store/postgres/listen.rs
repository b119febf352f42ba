//! The listener: one connection per node that `LISTEN`s on the schema's channel and turns
//! each notification into a [`StoreChange`]. When the connection is lost it reconnects (every
//! second) and, once listening again, sends [`StoreChange::Resync`]: notifications sent
//! meanwhile were missed, so every cache is dropped.

use super::Shared;
use crate::model::Hash32;
use crate::store::StoreChange;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::AsyncMessage;

/// Parse one notification payload (see `writer::payloads`). Unknown payloads resync.
pub(crate) fn parse(payload: &str) -> StoreChange {
    if let Some(list) = payload.strip_prefix("a:") {
        let mut hashes = Vec::new();
        for hex in list.split(',') {
            let mut h = [0u8; 32];
            if hex.len() != 64 || !hex.is_ascii() {
                return StoreChange::Resync;
            }
            for (i, b) in h.iter_mut().enumerate() {
                match u8::from_str_radix(&hex[2 * i..2 * i + 2], 16) {
                    Ok(v) => *b = v,
                    Err(_) => return StoreChange::Resync,
                }
            }
            hashes.push(Hash32(h));
        }
        StoreChange::AccessInvalidated(hashes)
    } else if payload == "m" {
        StoreChange::RoleMappings
    } else if let Some(uid) = payload.strip_prefix("p:") {
        StoreChange::Profile(uid.to_string())
    } else {
        StoreChange::Resync
    }
}

pub(super) async fn listen_loop(
    shared: Arc<Shared>,
    cfg: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    ready: std::sync::mpsc::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut listened = false;
    loop {
        match listen_once(&shared, &cfg, &tls, &mut ready, listened).await {
            Ok(()) => {
                listened = true;
                tracing::warn!("store listener: connection lost; reconnecting");
            }
            Err(e) => tracing::warn!("store listener: {e}"),
        }
        // Whatever the first attempt did, `open` waits no longer.
        drop(ready.take());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Connect, `LISTEN`, pass notifications on until the connection ends (`Ok`).
async fn listen_once(
    shared: &Shared,
    cfg: &tokio_postgres::Config,
    tls: &tokio_postgres_rustls::MakeRustlsConnect,
    ready: &mut Option<std::sync::mpsc::Sender<()>>,
    resync: bool,
) -> Result<(), String> {
    let (client, mut connection) = cfg
        .connect(tls.clone())
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (note_tx, mut note_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    // Drives the connection; ends (dropping `note_tx`) when it does.
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    if note_tx.send(n.payload().to_string()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("store listener: {e}");
                    break;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN \"{}\"", shared.channel))
        .await
        .map_err(|e| format!("LISTEN failed: {e}"))?;
    if let Some(r) = ready.take() {
        let _ = r.send(());
    }
    if resync {
        tracing::info!("store listener listening again; dropping every cache");
        let _ = shared.changes.send(StoreChange::Resync);
    }
    while let Some(payload) = note_rx.recv().await {
        let _ = shared.changes.send(parse(&payload));
    }
    drop(client);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_and_anything_else_resyncs() {
        let h = format!("{}{}", "ab".repeat(31), "01");
        assert_eq!(
            parse(&format!("a:{h},{h}")),
            StoreChange::AccessInvalidated(vec![Hash32([0xab; 32]).with_last(1); 2])
        );
        assert_eq!(parse("m"), StoreChange::RoleMappings);
        assert_eq!(parse("p:u_1"), StoreChange::Profile("u_1".into()));
        for bad in ["", "x", "a:zz", "a:12", &format!("a:{}", "g".repeat(64))] {
            assert_eq!(parse(bad), StoreChange::Resync, "{bad:?}");
        }
    }

    trait WithLast {
        fn with_last(self, b: u8) -> Self;
    }
    impl WithLast for Hash32 {
        fn with_last(mut self, b: u8) -> Self {
            self.0[31] = b;
            self
        }
    }
}
