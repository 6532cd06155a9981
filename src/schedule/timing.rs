//! When a job runs: a cron expression read on the wall clock of one IANA
//! timezone, and the decision, at each wake-up, whether a run is due, was
//! missed, or is still ahead.
//!
//! Everything here takes the time as an argument, so tests drive it with
//! synthetic clocks. What must stay true (case C13): a daily time in the
//! hour skipped when clocks go forward runs once, at the first instant after
//! the gap; a daily time in the hour repeated when they go back runs once;
//! other times run once every day. A slot is never run twice, whatever the
//! wall clock does; a slot more than [`LATE_LIMIT`] in the past when it is
//! first seen (the host slept, the clock jumped, the process was stopped) is
//! logged as missed and not caught up.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// How late a run may start and still count as on time. Later than this,
/// the slot is missed: no burst of catch-up runs after a long sleep.
pub const LATE_LIMIT: Duration = Duration::from_secs(60);

/// A wall clock that goes back by more than this is taken as reset (a
/// wrong time corrected), and the schedule restarts from it; a smaller
/// step back never repeats a slot that already ran.
const RESET_AFTER: Duration = Duration::from_secs(3 * 3600);

/// A parsed cron expression and the timezone it is read in.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    pub tz: Tz,
    /// As written, for messages.
    pub expr: String,
}

impl Schedule {
    /// Parses 5 fields (minute hour day-of-month month day-of-week), or 6
    /// with seconds first, or a nickname such as `@daily`.
    pub fn parse(expr: &str, tz: Tz) -> Result<Schedule, String> {
        let fields = expr.split_whitespace().count();
        if !expr.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
            return Err(format!(
                "{fields} fields; a cron expression has 5 (minute hour day month weekday), or 6 with seconds first"
            ));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(expr).map_err(|e| e.to_string())?;
        let schedule = Schedule {
            cron,
            tz,
            expr: expr.trim().to_owned(),
        };
        // A pattern that never matches (30 February) would only show up at
        // run time otherwise.
        schedule
            .try_next_after(Utc::now())
            .map_err(|e| format!("it never matches ({e})"))?;
        Ok(schedule)
    }

    fn try_next_after(&self, t: DateTime<Utc>) -> Result<DateTime<Utc>, croner::errors::CronError> {
        let local = t.with_timezone(&self.tz);
        let next = self.cron.find_next_occurrence(&local, false)?;
        Ok(next.with_timezone(&Utc))
    }

    /// The first slot strictly after `t`; `None` if the pattern has no
    /// further match (checked at parse time, so practically never).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.try_next_after(t).ok()
    }

    /// The next `n` slots after `t`, for `--check-config`.
    pub fn upcoming(&self, t: DateTime<Utc>, n: usize) -> Vec<DateTime<Tz>> {
        let mut out = Vec::with_capacity(n);
        let mut at = t;
        while out.len() < n {
            let Some(next) = self.next_after(at) else {
                break;
            };
            out.push(self.tz.from_utc_datetime(&next.naive_utc()));
            at = next;
        }
        out
    }
}

/// What a job's timer says at one wake-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// Nothing due yet.
    Idle,
    /// Run now, for this slot.
    Run(DateTime<Utc>),
    /// This slot (and `more` after it) went by unnoticed for longer than
    /// [`LATE_LIMIT`]; the job waits for its next slot.
    Missed {
        slot: DateTime<Utc>,
        more: u32,
        late: Duration,
    },
}

/// One job's position in its schedule.
#[derive(Debug, Clone)]
pub struct Timer {
    schedule: Schedule,
    next: Option<DateTime<Utc>>,
    /// The wall clock at the last poll, to notice it going back.
    seen: DateTime<Utc>,
    /// The last slot run or missed: never run again.
    done: Option<DateTime<Utc>>,
}

impl Timer {
    /// Starts at `now`: slots before it are not run (nobody was watching).
    pub fn new(schedule: Schedule, now: DateTime<Utc>) -> Timer {
        Timer {
            next: schedule.next_after(now),
            schedule,
            seen: now,
            done: None,
        }
    }

    /// Keeps the position when the config is reloaded with a new schedule:
    /// the next slot is recomputed, and one already done is not repeated.
    pub fn reschedule(&mut self, schedule: Schedule, now: DateTime<Utc>) {
        let from = self.done.map_or(now, |d| d.max(now));
        self.next = schedule.next_after(from);
        self.schedule = schedule;
        self.seen = now;
    }

    pub fn next(&self) -> Option<DateTime<Utc>> {
        self.next
    }

    /// Looks at the wall clock `now` and says whether a slot is due.
    pub fn poll(&mut self, now: DateTime<Utc>) -> Poll {
        if now < self.seen {
            // The clock went back: the slot ahead may now be too far ahead
            // (an hourly job would wait the jump out), so recompute, but
            // never repeat a slot that already ran, unless the clock was
            // reset by hours.
            let back = (self.seen - now).to_std().unwrap_or_default();
            let from = match self.done {
                Some(d) if back <= RESET_AFTER => d.max(now),
                _ => now,
            };
            self.next = self.schedule.next_after(from);
            tracing::debug!(back_seconds = back.as_secs(), next = ?self.next, "wall clock went back; next run recomputed");
        }
        self.seen = now;
        let Some(slot) = self.next.filter(|n| *n <= now) else {
            return Poll::Idle;
        };
        self.done = Some(slot);
        let late = (now - slot).to_std().unwrap_or_default();
        if late <= LATE_LIMIT {
            self.next = self.schedule.next_after(now);
            return Poll::Run(slot);
        }
        // Count the slots that went by, up to a bound (a seconds schedule
        // after a week of sleep would otherwise count for long).
        let mut more = 0;
        let mut at = slot;
        while let Some(n) = self.schedule.next_after(at).filter(|n| *n <= now) {
            more += 1;
            at = n;
            if more == 1000 {
                break;
            }
        }
        self.next = self.schedule.next_after(now);
        Poll::Missed { slot, more, late }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration as Span;

    fn berlin(expr: &str) -> Schedule {
        Schedule::parse(expr, chrono_tz::Europe::Berlin).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Drives a timer second by second (after jumping close to each
    /// slot), as the run loop would, and returns the slots it ran.
    fn runs_between(expr: &str, from: &str, to: &str) -> Vec<String> {
        let (from, to) = (utc(from), utc(to));
        let mut timer = Timer::new(berlin(expr), from);
        let mut now = from;
        let mut ran = Vec::new();
        while now < to {
            match timer.poll(now) {
                Poll::Run(slot) => {
                    ran.push(slot.with_timezone(&chrono_tz::Europe::Berlin).to_rfc3339())
                }
                Poll::Missed { slot, .. } => panic!("missed {slot} at {now}"),
                Poll::Idle => {}
            }
            // Wake at the next slot, or every 60 s, whichever is first.
            let cap = now + Span::seconds(60);
            now = timer.next().map_or(cap, |n| n.min(cap));
        }
        ran
    }

    #[test]
    fn five_fields_and_seconds() {
        let s = Schedule::parse("*/2 * * * * *", Tz::UTC).unwrap();
        let t = utc("2026-01-01T00:00:01Z");
        assert_eq!(s.next_after(t), Some(utc("2026-01-01T00:00:02Z")));
        assert_eq!(
            s.next_after(utc("2026-01-01T00:00:02Z")),
            Some(utc("2026-01-01T00:00:04Z"))
        );
        let s = Schedule::parse("15 4 * * MON", Tz::UTC).unwrap();
        // 2026-01-01 is a Thursday.
        assert_eq!(s.next_after(t), Some(utc("2026-01-05T04:15:00Z")));
        let s = Schedule::parse("0 */6 * * *", chrono_tz::Asia::Kolkata).unwrap();
        assert_eq!(s.next_after(t), Some(utc("2026-01-01T00:30:00Z")));
    }

    #[test]
    fn bad_expressions_are_refused() {
        for bad in [
            "* * * *",
            "0 0 * * * * 2026",
            "61 * * * *",
            "0 25 * * *",
            "x y z a b",
            "0 0 30 2 *",
        ] {
            assert!(Schedule::parse(bad, Tz::UTC).is_err(), "{bad} accepted");
        }
        assert!(Schedule::parse("@daily", Tz::UTC).is_ok());
    }

    /// C13, spring: 2026-03-29 02:00 CET becomes 03:00 CEST in Berlin.
    #[test]
    fn c13_spring_forward_runs_the_missing_time_once_after_the_gap() {
        let from = "2026-03-27T12:00:00Z";
        let to = "2026-03-31T12:00:00Z";
        let half_past = runs_between("30 2 * * *", from, to);
        assert_eq!(
            half_past,
            [
                "2026-03-28T02:30:00+01:00",
                // The first instant after the gap.
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00",
                "2026-03-31T02:30:00+02:00",
            ]
        );
        let three = runs_between("0 3 * * *", from, to);
        assert_eq!(
            three,
            [
                "2026-03-28T03:00:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T03:00:00+02:00",
                "2026-03-31T03:00:00+02:00",
            ]
        );
    }

    /// C13, autumn: 2026-10-25 03:00 CEST becomes 02:00 CET again.
    #[test]
    fn c13_fall_back_runs_the_repeated_time_once() {
        let from = "2026-10-23T12:00:00Z";
        let to = "2026-10-27T12:00:00Z";
        let half_past = runs_between("30 2 * * *", from, to);
        assert_eq!(
            half_past,
            [
                "2026-10-24T02:30:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-26T02:30:00+01:00",
                "2026-10-27T02:30:00+01:00",
            ]
        );
        let three = runs_between("0 3 * * *", from, to);
        assert_eq!(
            three,
            [
                "2026-10-24T03:00:00+02:00",
                "2026-10-25T03:00:00+01:00",
                "2026-10-26T03:00:00+01:00",
                "2026-10-27T03:00:00+01:00",
            ]
        );
    }

    /// Starting inside the repeated hour, after the first 02:30 ran,
    /// must not run it again in the second pass of the hour.
    #[test]
    fn c13_started_inside_the_repeated_hour() {
        // 02:45 CEST (first pass) = 00:45 UTC.
        let ran = runs_between("30 2 * * *", "2026-10-25T00:45:00Z", "2026-10-25T23:00:00Z");
        assert!(ran.is_empty(), "{ran:?}");
    }

    #[test]
    fn interval_jobs_run_through_both_passes_of_the_repeated_hour() {
        let ran = runs_between("0 * * * *", "2026-10-24T23:30:00Z", "2026-10-25T02:30:00Z");
        // 01:00 and 02:00 CEST, 02:00 CET, 03:00 CET: every hour of real time.
        assert_eq!(ran.len(), 3, "{ran:?}");
    }

    #[test]
    fn clock_jump_forward_is_a_missed_run_not_a_burst() {
        let s = Schedule::parse("0 * * * *", Tz::UTC).unwrap();
        let mut timer = Timer::new(s, utc("2026-05-01T10:30:00Z"));
        assert_eq!(timer.poll(utc("2026-05-01T10:59:00Z")), Poll::Idle);
        // The host slept from 10:59 to 14:20.
        match timer.poll(utc("2026-05-01T14:20:00Z")) {
            Poll::Missed { slot, more, .. } => {
                assert_eq!(slot, utc("2026-05-01T11:00:00Z"));
                assert_eq!(more, 3);
            }
            p => panic!("{p:?}"),
        }
        assert_eq!(timer.poll(utc("2026-05-01T14:20:01Z")), Poll::Idle);
        assert_eq!(timer.next(), Some(utc("2026-05-01T15:00:00Z")));
        assert_eq!(
            timer.poll(utc("2026-05-01T15:00:00Z")),
            Poll::Run(utc("2026-05-01T15:00:00Z"))
        );
    }

    #[test]
    fn a_little_late_still_runs() {
        let s = Schedule::parse("0 * * * *", Tz::UTC).unwrap();
        let mut timer = Timer::new(s, utc("2026-05-01T10:30:00Z"));
        assert_eq!(
            timer.poll(utc("2026-05-01T11:00:45Z")),
            Poll::Run(utc("2026-05-01T11:00:00Z"))
        );
    }

    #[test]
    fn clock_jump_back_never_repeats_a_slot() {
        let s = Schedule::parse("0 * * * *", Tz::UTC).unwrap();
        let mut timer = Timer::new(s, utc("2026-05-01T10:59:30Z"));
        assert_eq!(
            timer.poll(utc("2026-05-01T11:00:00Z")),
            Poll::Run(utc("2026-05-01T11:00:00Z"))
        );
        // NTP puts the clock back 5 minutes: 11:00 must not run again.
        assert_eq!(timer.poll(utc("2026-05-01T10:55:05Z")), Poll::Idle);
        assert_eq!(timer.next(), Some(utc("2026-05-01T12:00:00Z")));
        let mut now = utc("2026-05-01T10:55:05Z");
        while now < utc("2026-05-01T11:59:00Z") {
            now += Span::seconds(30);
            assert_eq!(timer.poll(now), Poll::Idle, "at {now}");
        }
    }

    #[test]
    fn clock_reset_back_by_hours_follows_the_new_time() {
        let s = Schedule::parse("0 * * * *", Tz::UTC).unwrap();
        let mut timer = Timer::new(s, utc("2026-05-01T20:59:30Z"));
        assert!(matches!(
            timer.poll(utc("2026-05-01T21:00:00Z")),
            Poll::Run(_)
        ));
        // A clock that was 10 hours ahead is corrected.
        timer.poll(utc("2026-05-01T11:00:30Z"));
        assert_eq!(timer.next(), Some(utc("2026-05-01T12:00:00Z")));
    }

    #[test]
    fn slots_before_the_start_are_not_run() {
        let s = Schedule::parse("0 3 * * *", Tz::UTC).unwrap();
        let mut timer = Timer::new(s, utc("2026-05-01T03:00:30Z"));
        assert_eq!(timer.poll(utc("2026-05-01T03:00:31Z")), Poll::Idle);
        assert_eq!(timer.next(), Some(utc("2026-05-02T03:00:00Z")));
    }

    #[test]
    fn upcoming_is_in_the_jobs_timezone() {
        let s = berlin("30 2 * * *");
        let next = s.upcoming(utc("2026-03-28T12:00:00Z"), 2);
        assert_eq!(next[0].to_rfc3339(), "2026-03-29T03:00:00+02:00");
        assert_eq!(next[1].to_rfc3339(), "2026-03-30T02:30:00+02:00");
    }
}
