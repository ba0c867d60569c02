//! Partition leases in the shared ledger: which bridge replica consumes which
//! partition queue (ARCHITECTURE §7, partitioned consumption).
//!
//! Every replica heartbeats a row in `replicas`; a replica is live while its
//! heartbeat is younger than the lease time. Each replica holds at most its
//! fair share, ⌈partitions / live replicas⌉, of the `partitions` rows, renews
//! them on each heartbeat, claims free or expired ones up to its share, and
//! gives back what is above its share (after draining it, see `run`). A
//! replica that dies stops renewing; its leases expire and the survivors
//! claim them.
//!
//! The lease decides who subscribes; RabbitMQ's single-active-consumer on each
//! partition queue is the second guard: even if two replicas believed they
//! held one partition (a stalled replica whose lease expired), only one of
//! them receives its messages at a time.
//!
//! Times are the replicas' clocks (RFC 3339 text, as everywhere in the
//! ledger); clock skew between replicas must stay well below the lease time.

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

use super::{Ledger, q, ts};

/// One replica's view after a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leases {
    /// Partitions this replica holds a lease on, ascending.
    pub owned: Vec<u16>,
    /// Its fair share now: ⌈partitions / live replicas⌉.
    pub share: usize,
    /// Live replicas (heartbeat younger than the lease time), this one included.
    pub live: usize,
}

impl Ledger {
    /// Make sure partitions `0..partitions` have lease rows (once, at start;
    /// idempotent, so replicas starting together may all do it).
    pub async fn init_partitions(&self, partitions: u16) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        for p in 0..partitions {
            sqlx::query(q(
                self.pg,
                "INSERT INTO partitions (part, owner, expires_at) VALUES (?, NULL, ?) \
                 ON CONFLICT(part) DO NOTHING",
            ))
            .bind(i64::from(p))
            .bind(ts(DateTime::<Utc>::UNIX_EPOCH))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Heartbeat, renew this replica's leases, and (when `claim`) claim free
    /// or expired partitions up to the fair share, starting from a
    /// replica-specific offset so that replicas starting together do not all
    /// try the same partitions first.
    pub async fn lease_partitions(
        &self,
        me: &str,
        partitions: u16,
        lease: Duration,
        claim: bool,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Leases> {
        let pg = self.pg;
        let until = ts(now + lease);
        let mut tx = self.pool.begin().await?;
        sqlx::query(q(
            pg,
            "INSERT INTO replicas (id, seen_at) VALUES (?, ?) \
             ON CONFLICT(id) DO UPDATE SET seen_at = excluded.seen_at",
        ))
        .bind(me)
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        // Replicas gone for long are forgotten.
        sqlx::query(q(pg, "DELETE FROM replicas WHERE seen_at < ?"))
            .bind(ts(now - lease * 10))
            .execute(&mut *tx)
            .await?;
        let live: i64 = sqlx::query(q(pg, "SELECT COUNT(*) FROM replicas WHERE seen_at >= ?"))
            .bind(ts(now - lease))
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        let live = usize::try_from(live).unwrap_or(1).max(1);
        let share = usize::from(partitions).div_ceil(live);
        sqlx::query(q(
            pg,
            "UPDATE partitions SET expires_at = ? WHERE owner = ? AND part < ?",
        ))
        .bind(&until)
        .bind(me)
        .bind(i64::from(partitions))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;

        let mut owned = self.owned(me, partitions).await?;
        if claim && owned.len() < share {
            let start = offset(me, partitions);
            for i in 0..partitions {
                if owned.len() >= share {
                    break;
                }
                let p = (start + i) % partitions;
                if owned.contains(&p) {
                    continue;
                }
                // Atomic per row: of two replicas claiming one partition,
                // the second finds it owned and unexpired.
                let done = sqlx::query(q(
                    pg,
                    "UPDATE partitions SET owner = ?, expires_at = ? \
                     WHERE part = ? AND (owner IS NULL OR owner = ? OR expires_at < ?)",
                ))
                .bind(me)
                .bind(&until)
                .bind(i64::from(p))
                .bind(me)
                .bind(ts(now))
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 1 {
                    owned.push(p);
                }
            }
            owned.sort_unstable();
        }
        Ok(Leases { owned, share, live })
    }

    async fn owned(&self, me: &str, partitions: u16) -> anyhow::Result<Vec<u16>> {
        let rows = sqlx::query(q(
            self.pg,
            "SELECT part FROM partitions WHERE owner = ? AND part < ? ORDER BY part",
        ))
        .bind(me)
        .bind(i64::from(partitions))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| u16::try_from(r.get::<i64, _>(0)).ok())
            .collect())
    }

    /// Give partitions back (after they are drained), and, with `leave`, the
    /// replica's heartbeat too (a clean stop: the others need not wait for
    /// the lease to expire).
    pub async fn release_partitions(
        &self,
        me: &str,
        parts: &[u16],
        leave: bool,
    ) -> anyhow::Result<()> {
        for p in parts {
            sqlx::query(q(
                self.pg,
                "UPDATE partitions SET owner = NULL WHERE part = ? AND owner = ?",
            ))
            .bind(i64::from(*p))
            .bind(me)
            .execute(&self.pool)
            .await?;
        }
        if leave {
            sqlx::query(q(self.pg, "DELETE FROM replicas WHERE id = ?"))
                .bind(me)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}

/// Where a replica starts looking for partitions to claim.
fn offset(me: &str, partitions: u16) -> u16 {
    let h = me.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (h % u64::from(partitions.max(1))) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ledger(partitions: u16) -> (tempfile::TempDir, Ledger) {
        let d = tempfile::tempdir().unwrap();
        let l = Ledger::open(&d.path().join("l.db")).await.unwrap();
        l.init_partitions(partitions).await.unwrap();
        (d, l)
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[tokio::test]
    async fn replicas_share_partitions_fairly_and_survivors_take_over_expired_leases() {
        let (_d, l) = ledger(8).await;
        let lease = Duration::seconds(10);
        // Three replicas announce themselves, then claim.
        for r in ["a", "b", "c"] {
            l.lease_partitions(r, 8, lease, false, t(0)).await.unwrap();
        }
        let mut all = Vec::new();
        for r in ["a", "b", "c"] {
            let got = l.lease_partitions(r, 8, lease, true, t(1)).await.unwrap();
            assert_eq!(got.live, 3);
            assert_eq!(got.share, 3);
            assert!(got.owned.len() <= 3, "{r}: {got:?}");
            all.extend(got.owned);
        }
        all.sort_unstable();
        assert_eq!(
            all,
            (0..8).collect::<Vec<u16>>(),
            "every partition held once"
        );

        // c stops heartbeating; after the lease time a and b take its partitions.
        let c_had = l.owned("c", 8).await.unwrap();
        assert!(!c_had.is_empty());
        for r in ["a", "b"] {
            l.lease_partitions(r, 8, lease, true, t(6)).await.unwrap();
        }
        let a = l
            .lease_partitions("a", 8, lease, true, t(12))
            .await
            .unwrap();
        let b = l
            .lease_partitions("b", 8, lease, true, t(12))
            .await
            .unwrap();
        assert_eq!((a.live, a.share), (2, 4));
        let mut ab: Vec<u16> = a.owned.iter().chain(&b.owned).copied().collect();
        ab.sort_unstable();
        assert_eq!(
            ab,
            (0..8).collect::<Vec<u16>>(),
            "survivors hold everything"
        );
        assert!(a.owned.len() == 4 && b.owned.len() == 4, "{a:?} {b:?}");
    }

    #[tokio::test]
    async fn an_unexpired_lease_is_never_claimed_by_another_replica() {
        let (_d, l) = ledger(4).await;
        let lease = Duration::seconds(10);
        let a = l.lease_partitions("a", 4, lease, true, t(0)).await.unwrap();
        assert_eq!(a.owned, vec![0, 1, 2, 3], "alone, a takes all");
        // b joins: its share is 2, but a's leases are live; b gets nothing
        // until a gives some back.
        let b = l.lease_partitions("b", 4, lease, true, t(1)).await.unwrap();
        assert_eq!(b.share, 2);
        assert!(b.owned.is_empty(), "{b:?}");
        let a = l.lease_partitions("a", 4, lease, true, t(2)).await.unwrap();
        assert_eq!(a.share, 2, "a sees its share shrink");
        l.release_partitions("a", &a.owned[2..], false)
            .await
            .unwrap();
        let b = l.lease_partitions("b", 4, lease, true, t(3)).await.unwrap();
        assert_eq!(b.owned, vec![2, 3]);
        // A clean leave frees the heartbeat at once.
        l.release_partitions("b", &b.owned, true).await.unwrap();
        let a = l.lease_partitions("a", 4, lease, true, t(4)).await.unwrap();
        assert_eq!((a.live, a.owned.len()), (1, 4));
    }
}
