//! Retention policy: which archives of one volume a set of `--keep-*` rules
//! keeps, decided from their creation times alone (no files, no clock).
//!
//! The rules are the ones restic users know. Walking the archives newest
//! first, `last N` keeps the N newest; `hourly`/`daily`/`weekly`/`monthly`/
//! `yearly N` keep the newest archive of each of the last N periods that have
//! one (an empty period does not use up a slot), periods being read on the
//! wall clock of one timezone; `within D` keeps every archive less than D
//! older than the newest archive (not than now, so a pause in backups never
//! empties a volume). An archive kept by any rule stays.
//!
//! What must stay true: the newest archive is always kept, and a policy that
//! would keep nothing keeps everything instead and says so.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Datelike, Offset, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// The `--keep-*` rules. A count of 0 or a zero duration means "not set".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    pub within: Option<Duration>,
}

impl Policy {
    /// Whether no rule is set: such a policy would delete everything.
    pub fn is_empty(&self) -> bool {
        let counts = [
            self.last,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ];
        counts.iter().all(|&n| n == 0) && self.within.is_none_or(|d| d.is_zero())
    }
}

/// A calendar rule, read on the wall clock of the policy's timezone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Period {
    const ALL: [Period; 5] = [
        Period::Hourly,
        Period::Daily,
        Period::Weekly,
        Period::Monthly,
        Period::Yearly,
    ];

    fn name(self) -> &'static str {
        match self {
            Period::Hourly => "hourly",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
        }
    }

    fn count(self, policy: &Policy) -> u32 {
        match self {
            Period::Hourly => policy.hourly,
            Period::Daily => policy.daily,
            Period::Weekly => policy.weekly,
            Period::Monthly => policy.monthly,
            Period::Yearly => policy.yearly,
        }
    }

    /// The period `t` falls in: its label, and the UTC offset for hours.
    ///
    /// Hours carry the offset so that the hour repeated when clocks go back
    /// counts as two hours (it is two hours of backups); days, weeks,
    /// months and years are plain calendar fields, so a day is one day
    /// whatever its length. Weeks are ISO weeks (Monday first; the week
    /// of 1 January may belong to the year before).
    fn of(self, t: DateTime<Utc>, tz: Tz) -> (String, i32) {
        let local = t.with_timezone(&tz);
        match self {
            Period::Hourly => (
                local.format("%Y-%m-%d %H:00 %Z").to_string(),
                local.offset().fix().local_minus_utc(),
            ),
            Period::Daily => (local.format("%Y-%m-%d").to_string(), 0),
            Period::Weekly => {
                let w = local.iso_week();
                (format!("{:04}-W{:02}", w.year(), w.week()), 0)
            }
            Period::Monthly => (local.format("%Y-%m").to_string(), 0),
            Period::Yearly => (format!("{:04}", local.year()), 0),
        }
    }
}

/// Why an archive is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The n-th newest archive, under `last`.
    Last(u32),
    /// The newest archive of this period.
    Period(Period, String),
    /// Less than this much older than the newest archive.
    Within(Duration),
    /// The newest archive, which is never deleted.
    Newest,
    /// The policy would have deleted every archive, so none is deleted.
    Guard,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Last(n) => write!(f, "last {n}"),
            Reason::Period(p, label) => write!(f, "{} {label}", p.name()),
            Reason::Within(d) => write!(f, "within {}", humantime::format_duration(*d)),
            Reason::Newest => f.write_str("newest"),
            Reason::Guard => f.write_str("policy would delete all"),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The decision for each archive, in the order the times were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The reasons each archive is kept; empty means delete it.
    pub reasons: Vec<Vec<Reason>>,
    /// The policy kept nothing, so everything was kept instead.
    pub guarded: bool,
}

impl Verdict {
    pub fn keep(&self, i: usize) -> bool {
        !self.reasons[i].is_empty()
    }

    pub fn kept(&self) -> usize {
        self.reasons.iter().filter(|r| !r.is_empty()).count()
    }
}

/// Applies `policy` to archives created at `times`, periods read in `tz`.
///
/// `times` may come in any order; of two equal times, the one earlier in
/// the slice counts as the newer.
pub fn decide(times: &[DateTime<Utc>], policy: &Policy, tz: Tz) -> Verdict {
    let mut reasons = vec![Vec::new(); times.len()];
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by(|&a, &b| times[b].cmp(&times[a]));
    let Some(&newest) = order.first() else {
        return Verdict {
            reasons,
            guarded: false,
        };
    };

    for (rank, &i) in order.iter().take(policy.last as usize).enumerate() {
        reasons[i].push(Reason::Last(rank as u32 + 1));
    }

    for period in Period::ALL {
        let count = period.count(policy) as usize;
        // A set, not "differs from the previous one": in a zone whose
        // clocks go back across midnight the local date can step backwards.
        let mut used = HashSet::new();
        for &i in &order {
            if used.len() == count {
                break;
            }
            let (label, offset) = period.of(times[i], tz);
            if used.insert((label.clone(), offset)) {
                reasons[i].push(Reason::Period(period, label));
            }
        }
    }

    if let Some(within) = policy.within.filter(|d| !d.is_zero()) {
        for &i in &order {
            let age = (times[newest] - times[i]).to_std().unwrap_or_default();
            if age < within {
                reasons[i].push(Reason::Within(within));
            }
        }
    }

    if reasons.iter().all(Vec::is_empty) {
        for r in &mut reasons {
            r.push(Reason::Guard);
        }
        return Verdict {
            reasons,
            guarded: true,
        };
    }
    if reasons[newest].is_empty() {
        reasons[newest].push(Reason::Newest);
    }
    Verdict {
        reasons,
        guarded: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const HOUR: i64 = 3600;
    const DAY: i64 = 24 * HOUR;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn local(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .earliest()
            .unwrap()
            .with_timezone(&Utc)
    }

    /// Indices of the kept archives.
    fn kept(times: &[DateTime<Utc>], policy: Policy, tz: Tz) -> Vec<usize> {
        let v = decide(times, &policy, tz);
        (0..times.len()).filter(|&i| v.keep(i)).collect()
    }

    fn reasons_of(v: &Verdict, i: usize) -> Vec<String> {
        v.reasons[i].iter().map(ToString::to_string).collect()
    }

    /// One archive every `step` seconds, newest first, starting at `from`.
    fn series(from: DateTime<Utc>, step: i64, n: usize) -> Vec<DateTime<Utc>> {
        (0..n)
            .map(|k| from - chrono::Duration::seconds(step * k as i64))
            .collect()
    }

    #[test]
    fn empty_policy_is_empty() {
        assert!(Policy::default().is_empty());
        let zero_within = Policy {
            within: Some(Duration::ZERO),
            ..Policy::default()
        };
        assert!(zero_within.is_empty());
        let daily = Policy {
            daily: 1,
            ..Policy::default()
        };
        assert!(!daily.is_empty());
        let within = Policy {
            within: Some(Duration::from_secs(1)),
            ..Policy::default()
        };
        assert!(!within.is_empty());
    }

    #[test]
    fn no_archives_no_decisions() {
        let policy = Policy {
            last: 3,
            ..Policy::default()
        };
        let v = decide(&[], &policy, Tz::UTC);
        assert!(v.reasons.is_empty() && !v.guarded);
    }

    #[test]
    fn keep_last_keeps_the_newest_n() {
        let times = series(utc(2026, 12, 10, 12, 0), HOUR, 6);
        let policy = Policy {
            last: 3,
            ..Policy::default()
        };
        assert_eq!(kept(&times, policy, Tz::UTC), vec![0, 1, 2]);
        let v = decide(&times, &policy, Tz::UTC);
        assert_eq!(reasons_of(&v, 1), vec!["last 2"]);
    }

    #[test]
    fn order_of_the_input_does_not_matter() {
        let mut times = series(utc(2026, 12, 10, 12, 0), HOUR, 5);
        times.reverse();
        let policy = Policy {
            last: 2,
            ..Policy::default()
        };
        assert_eq!(kept(&times, policy, Tz::UTC), vec![3, 4]);
    }

    #[test]
    fn keep_last_more_than_there_are_keeps_all() {
        let times = series(utc(2026, 12, 10, 12, 0), HOUR, 3);
        let policy = Policy {
            last: 10,
            ..Policy::default()
        };
        assert_eq!(kept(&times, policy, Tz::UTC), vec![0, 1, 2]);
    }

    #[test]
    fn keep_hourly_keeps_the_newest_of_each_hour() {
        // Every 20 minutes from 12:40 back: 12:40 12:20 12:00 11:40 11:20 ...
        let times = series(utc(2026, 12, 10, 12, 40), 20 * 60, 9);
        let policy = Policy {
            hourly: 2,
            ..Policy::default()
        };
        assert_eq!(kept(&times, policy, Tz::UTC), vec![0, 3]);
        let v = decide(&times, &policy, Tz::UTC);
        assert_eq!(reasons_of(&v, 3), vec!["hourly 2026-12-10 11:00 UTC"]);
    }

    #[test]
    fn keep_daily_keeps_the_newest_of_each_day() {
        // Every 8 hours from 2026-12-10 20:00 back.
        let times = series(utc(2026, 12, 10, 20, 0), 8 * HOUR, 9);
        let policy = Policy {
            daily: 2,
            ..Policy::default()
        };
        assert_eq!(kept(&times, policy, Tz::UTC), vec![0, 3]);
        let v = decide(&times, &policy, Tz::UTC);
        assert_eq!(reasons_of(&v, 0), vec!["daily 2026-12-10"]);
        assert_eq!(reasons_of(&v, 3), vec!["daily 2026-12-09"]);
    }

    #[test]
    fn keep_monthly_and_yearly() {
        // The 15th of every month, newest first from 2026-12.
        let times: Vec<_> = (0..30u32)
            .map(|k| utc(2026 - (k / 12) as i32, 12 - k % 12, 15, 12, 0))
            .collect();
        let monthly = Policy {
            monthly: 4,
            ..Policy::default()
        };
        assert_eq!(kept(&times, monthly, Tz::UTC), vec![0, 1, 2, 3]);
        let yearly = Policy {
            yearly: 3,
            ..Policy::default()
        };
        // The newest of 2026, 2025 and 2024: December of each.
        assert_eq!(kept(&times, yearly, Tz::UTC), vec![0, 12, 24]);
        let v = decide(&times, &yearly, Tz::UTC);
        assert_eq!(reasons_of(&v, 12), vec!["yearly 2025"]);
    }

    #[test]
    fn periods_without_archives_do_not_count() {
        // Days 20, 19, then a gap of a month, then days 18 and 17 of the month before.
        let times = vec![
            utc(2026, 12, 20, 3, 0),
            utc(2026, 12, 19, 3, 0),
            utc(2026, 11, 18, 3, 0),
            utc(2026, 11, 17, 3, 0),
            utc(2026, 11, 16, 3, 0),
        ];
        let policy = Policy {
            daily: 4,
            ..Policy::default()
        };
        assert_eq!(kept(&times, policy, Tz::UTC), vec![0, 1, 2, 3]);
    }

    /// C08: backups on days 1, 2 and 3, then a run on day 8 with keep-daily 3.
    #[test]
    fn c08_gap_then_keep_daily_3_keeps_the_three_daily_backups() {
        let times = vec![
            utc(2026, 12, 3, 2, 0),
            utc(2026, 12, 2, 2, 0),
            utc(2026, 12, 1, 2, 0),
        ];
        let policy = Policy {
            daily: 3,
            ..Policy::default()
        };
        // "Now" is day 8: no clock is read, so the gap cannot matter.
        assert_eq!(kept(&times, policy, Tz::UTC), vec![0, 1, 2]);

        // If the day-8 run backed up before pruning, keep-daily 3 keeps
        // days 8, 3 and 2: still three, never fewer because of the gap
        // (a rule by age from now, "7 days", would keep day 8 alone).
        let mut with_day8 = vec![utc(2026, 12, 8, 2, 0)];
        with_day8.extend(&times);
        assert_eq!(kept(&with_day8, policy, Tz::UTC), vec![0, 1, 2]);
        let four = Policy {
            daily: 4,
            ..Policy::default()
        };
        assert_eq!(kept(&with_day8, four, Tz::UTC), vec![0, 1, 2, 3]);
    }

    #[test]
    fn keep_within_is_measured_from_the_newest_archive() {
        // Archives on days 1..=3, then nothing for a year.
        let times = vec![
            utc(2025, 12, 3, 2, 0),
            utc(2025, 12, 2, 2, 0),
            utc(2025, 12, 1, 2, 0),
            utc(2025, 11, 1, 2, 0),
        ];
        let policy = Policy {
            within: Some(Duration::from_secs(7 * DAY as u64)),
            ..Policy::default()
        };
        assert_eq!(kept(&times, policy, Tz::UTC), vec![0, 1, 2]);
        let v = decide(&times, &policy, Tz::UTC);
        assert_eq!(reasons_of(&v, 2), vec!["within 7days"]);
    }

    #[test]
    fn keep_within_excludes_exactly_d_older() {
        let times = series(utc(2026, 12, 8, 0, 0), DAY, 9);
        let policy = Policy {
            within: Some(Duration::from_secs(7 * DAY as u64)),
            ..Policy::default()
        };
        assert_eq!(kept(&times, policy, Tz::UTC), (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn an_archive_kept_by_any_rule_stays_with_all_its_reasons() {
        // Daily at 02:00 for 40 days, newest 2026-12-31.
        let times = series(utc(2026, 12, 31, 2, 0), DAY, 40);
        let policy = Policy {
            last: 2,
            daily: 3,
            weekly: 2,
            monthly: 2,
            ..Policy::default()
        };
        let v = decide(&times, &policy, Tz::UTC);
        // 2026-12-31 is a Thursday of ISO week 53; the week before ends
        // Sunday 2026-12-27 (index 4); November ends at index 31.
        let want = vec![0, 1, 2, 4, 31];
        let got: Vec<usize> = (0..times.len()).filter(|&i| v.keep(i)).collect();
        assert_eq!(got, want);
        assert_eq!(
            reasons_of(&v, 0),
            vec![
                "last 1",
                "daily 2026-12-31",
                "weekly 2026-W53",
                "monthly 2026-12"
            ]
        );
        assert_eq!(reasons_of(&v, 4), vec!["weekly 2026-W52"]);
        assert_eq!(reasons_of(&v, 31), vec!["monthly 2026-11"]);
    }

    /// The example in restic's documentation, in spirit: keep-daily 7 and
    /// keep-weekly 5 over daily snapshots keeps the last 7 days, then the
    /// newest of each of the weeks before, 5 weeks counted in all.
    #[test]
    fn daily_and_weekly_combine_like_restic() {
        // Daily at 12:00 from Sunday 2026-11-29 back for 60 days.
        let times = series(utc(2026, 11, 29, 12, 0), DAY, 60);
        let policy = Policy {
            daily: 7,
            weekly: 5,
            ..Policy::default()
        };
        let got = kept(&times, policy, Tz::UTC);
        // Days 0..7 (this whole ISO week, Mon 23 – Sun 29) and the Sundays
        // of the four weeks before it.
        assert_eq!(got, vec![0, 1, 2, 3, 4, 5, 6, 7, 14, 21, 28]);
    }

    #[test]
    fn weekly_uses_iso_weeks_across_the_year_boundary() {
        // 2026-12-31 (Thu) and 2027-01-03 (Sun) are both ISO 2026-W53;
        // 2027-01-04 (Mon) starts 2027-W01.
        let times = vec![
            utc(2027, 1, 4, 12, 0),
            utc(2027, 1, 3, 12, 0),
            utc(2026, 12, 31, 12, 0),
            utc(2026, 12, 27, 12, 0),
        ];
        let policy = Policy {
            weekly: 3,
            ..Policy::default()
        };
        let v = decide(&times, &policy, Tz::UTC);
        assert_eq!(reasons_of(&v, 0), vec!["weekly 2027-W01"]);
        assert_eq!(reasons_of(&v, 1), vec!["weekly 2026-W53"]);
        assert!(!v.keep(2), "same ISO week as 2027-01-03");
        assert_eq!(reasons_of(&v, 3), vec!["weekly 2026-W52"]);

        // 2024-12-30 (Mon) is already 2025-W01.
        let v = decide(&[utc(2024, 12, 30, 12, 0)], &policy, Tz::UTC);
        assert_eq!(reasons_of(&v, 0), vec!["weekly 2025-W01"]);
    }

    #[test]
    fn days_are_read_in_the_timezone() {
        // 23:30 UTC on 1 Dec is 00:30 on 2 Dec in Berlin.
        let berlin = chrono_tz::Europe::Berlin;
        let times = vec![utc(2026, 12, 1, 23, 30), utc(2026, 12, 1, 12, 0)];
        let policy = Policy {
            daily: 2,
            ..Policy::default()
        };
        assert_eq!(kept(&times, policy, Tz::UTC), vec![0]);
        assert_eq!(kept(&times, policy, berlin), vec![0, 1]);
        let v = decide(&times, &policy, berlin);
        assert_eq!(reasons_of(&v, 0), vec!["daily 2026-12-02"]);
    }

    #[test]
    fn dst_spring_forward_day_is_one_day_bucket() {
        let berlin = chrono_tz::Europe::Berlin;
        // 2026-03-29 has 23 hours in Berlin (02:00 CET -> 03:00 CEST).
        let times = vec![
            local(berlin, 2026, 3, 30, 0, 30),
            local(berlin, 2026, 3, 29, 23, 30),
            local(berlin, 2026, 3, 29, 3, 30),
            local(berlin, 2026, 3, 29, 0, 30),
            local(berlin, 2026, 3, 28, 23, 30),
        ];
        let policy = Policy {
            daily: 3,
            ..Policy::default()
        };
        let v = decide(&times, &policy, berlin);
        assert_eq!(reasons_of(&v, 0), vec!["daily 2026-03-30"]);
        assert_eq!(reasons_of(&v, 1), vec!["daily 2026-03-29"]);
        assert!(!v.keep(2) && !v.keep(3), "same day as 23:30 on the 29th");
        assert_eq!(reasons_of(&v, 4), vec!["daily 2026-03-28"]);
    }

    #[test]
    fn dst_fall_back_day_is_one_day_bucket() {
        let berlin = chrono_tz::Europe::Berlin;
        // 2026-10-25 has 25 hours in Berlin (03:00 CEST -> 02:00 CET).
        let late = local(berlin, 2026, 10, 25, 23, 30);
        let early = local(berlin, 2026, 10, 25, 0, 30);
        assert_eq!((late - early).num_hours(), 24, "a 25-hour day");
        let times = vec![late, early, local(berlin, 2026, 10, 24, 23, 30)];
        let policy = Policy {
            daily: 2,
            ..Policy::default()
        };
        let v = decide(&times, &policy, berlin);
        assert_eq!(reasons_of(&v, 0), vec!["daily 2026-10-25"]);
        assert!(!v.keep(1), "00:30 and 23:30 on the 25th are one day");
        assert_eq!(reasons_of(&v, 2), vec!["daily 2026-10-24"]);
    }

    #[test]
    fn dst_repeated_hour_counts_as_two_hours() {
        let berlin = chrono_tz::Europe::Berlin;
        // 02:30 CEST (00:30 UTC) and 02:30 CET (01:30 UTC) on 2026-10-25.
        let times = vec![utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 0, 30)];
        let policy = Policy {
            hourly: 5,
            ..Policy::default()
        };
        let v = decide(&times, &policy, berlin);
        assert_eq!(reasons_of(&v, 0), vec!["hourly 2026-10-25 02:00 CET"]);
        assert_eq!(reasons_of(&v, 1), vec!["hourly 2026-10-25 02:00 CEST"]);
    }

    #[test]
    fn the_newest_is_kept_by_every_non_empty_policy() {
        let times = series(utc(2026, 6, 1, 0, 0), 7 * HOUR, 50);
        let policies = [
            Policy {
                last: 1,
                ..Policy::default()
            },
            Policy {
                hourly: 1,
                ..Policy::default()
            },
            Policy {
                yearly: 1,
                ..Policy::default()
            },
            Policy {
                within: Some(Duration::from_millis(1)),
                ..Policy::default()
            },
        ];
        for p in policies {
            let v = decide(&times, &p, chrono_tz::America::New_York);
            assert!(v.keep(0), "{p:?}");
            assert!(!v.guarded);
        }
    }

    #[test]
    fn newest_wins_a_tie_by_input_order() {
        let t = utc(2026, 6, 1, 0, 0);
        let policy = Policy {
            last: 1,
            ..Policy::default()
        };
        assert_eq!(kept(&[t, t], policy, Tz::UTC), vec![0]);
    }

    #[test]
    fn a_policy_that_keeps_nothing_deletes_nothing() {
        let times = series(utc(2026, 6, 1, 0, 0), DAY, 4);
        let v = decide(&times, &Policy::default(), Tz::UTC);
        assert!(v.guarded);
        assert_eq!(v.kept(), 4);
        assert_eq!(reasons_of(&v, 3), vec!["policy would delete all"]);
    }
}
