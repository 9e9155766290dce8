//! Counters per virtual host (relaxed atomics: no lock on the handshake path), summed on read,
//! and every field shown of them. The fields are declared once, in `stats_fields.rs`; from that
//! list come the counter enums here, `Snapshot` (C `snicache_stats`), `ShmHealth` (C
//! `snicache_shm_health`), `BuiltinRule` (the policy's rule names), the stats JSON and, written
//! by build.rs into the C header, the structs and X-macros the nginx modules expand.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::Engine;
use crate::store::{StoreHealth, Usage};

/// A field's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// Where a field is shown (see `stats_fields.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Per vhost and in total.
    Vhost,
    /// Per vhost; the struct holds the sum, the JSON and Prometheus text each rule's count.
    Refusals,
    /// The listener's, in the totals only.
    Listener,
    /// A Redis store's, in the totals only.
    Remote,
    /// The shm store's health.
    Shm,
}

impl Group {
    /// The field's key in the stats JSON, inside its group's object.
    pub fn json_key(self, name: &str) -> &str {
        match self {
            Group::Remote => name.strip_prefix("remote_").unwrap_or(name),
            _ => name,
        }
    }
}

/// One declared field.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub group: Group,
    pub help: &'static str,
}

macro_rules! kind {
    (counter) => {
        Kind::Counter
    };
    (gauge) => {
        Kind::Gauge
    };
}

macro_rules! group {
    (event) => {
        Group::Vhost
    };
    (usage) => {
        Group::Vhost
    };
    (refusals) => {
        Group::Refusals
    };
    (listener) => {
        Group::Listener
    };
    (remote) => {
        Group::Remote
    };
    (health) => {
        Group::Shm
    };
}

/// A field's value, read from `$from` (`Sources`, or the `StoreHealth` of a shm store).
macro_rules! source {
    ($from:ident, event($v:ident)) => {
        $from.stats.event($from.vhost, Event::$v)
    };
    ($from:ident, usage($f:ident)) => {
        $from.usage.$f
    };
    ($from:ident, refusals) => {
        $from.stats.all_refusals($from.vhost)
    };
    ($from:ident, listener($v:ident)) => {
        match $from.vhost {
            None => $from.stats.listener(ListenerEvent::$v),
            Some(_) => 0,
        }
    };
    ($from:ident, remote($f:ident)) => {
        $from.store.get("remote", stringify!($f))
    };
    ($from:ident, health($f:ident)) => {
        $from.get("shm", stringify!($f))
    };
}

/// A `#[repr(C)]` struct of `u64` fields, its field table and how it is read.
macro_rules! field_struct {
    (
        $(#[$doc:meta])* $name:ident, $(#[$read:meta])* from $from:ty;
        $($field:ident: $kind:ident $src:ident $(($arg:ident))?, $help:literal;)*
    ) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct $name {
            $(#[doc = $help] pub $field: u64,)*
        }

        impl $name {
            /// The fields, in order.
            pub const FIELDS: &'static [Field] = &[$(Field {
                name: stringify!($field),
                kind: kind!($kind),
                group: group!($src),
                help: $help,
            },)*];

            $(#[$read])*
            pub(crate) fn read(from: &$from) -> $name {
                $name {
                    $($field: source!(from, $src $(($arg))?),)*
                }
            }

            /// Each field with its value, in order.
            pub fn fields(&self) -> impl Iterator<Item = (&'static Field, u64)> {
                Self::FIELDS.iter().zip([$(self.$field),*])
            }
        }
    };
}

/// Collects the `event(..)` and `listener(..)` entries of `stats_fields!` into the `Event` and
/// `ListenerEvent` enums.
macro_rules! counter_enums {
    ([$($ev:ident $evh:literal)*] [$($le:ident $leh:literal)*]) => {
        /// Engine events counted per vhost.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Event {
            $(#[doc = $evh] $ev,)*
        }
        const EVENTS: usize = [$(Event::$ev),*].len();

        /// Events counted before a vhost is known.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ListenerEvent {
            $(#[doc = $leh] $le,)*
        }
        const LISTENER_EVENTS: usize = [$(ListenerEvent::$le),*].len();
    };
    ([$($ev:tt)*] [$($le:tt)*] $f:ident: $k:ident event($v:ident), $h:literal; $($rest:tt)*) => {
        counter_enums!([$($ev)* $v $h] [$($le)*] $($rest)*);
    };
    ([$($ev:tt)*] [$($le:tt)*] $f:ident: $k:ident listener($v:ident), $h:literal; $($rest:tt)*) => {
        counter_enums!([$($ev)*] [$($le)* $v $h] $($rest)*);
    };
    (
        [$($ev:tt)*] [$($le:tt)*]
        $f:ident: $k:ident $s:ident $(($a:ident))?, $h:literal; $($rest:tt)*
    ) => {
        counter_enums!([$($ev)*] [$($le)*] $($rest)*);
    };
}

macro_rules! stats_fields {
    ($($body:tt)*) => {
        counter_enums!([] [] $($body)*);
        field_struct! {
            /// Counters at one moment, for one vhost or in total: C `snicache_stats`. The
            /// listener and remote fields are 0 for one vhost.
            Snapshot, from Sources<'_>;
            $($body)*
        }
    };
}

macro_rules! shm_health_fields {
    ($($body:tt)*) => {
        field_struct! {
            /// Health of a cache's shared-memory store, summed over every process using the
            /// mapping: C `snicache_shm_health`.
            ShmHealth, from StoreHealth;
            $($body)*
        }
    };
}

macro_rules! rules {
    ($($name:ident: $variant:ident, $help:literal;)*) => {
        /// The built-in policy rules, in policy order. Refuses resumption when:
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum BuiltinRule {
            $(#[doc = $help] $variant,)*
        }

        impl BuiltinRule {
            /// Every built-in rule, in policy order.
            pub const ALL: &'static [BuiltinRule] = &[$(BuiltinRule::$variant),*];

            /// The rule's name: its refusal reason in stats and logs.
            pub const fn name(self) -> &'static str {
                match self {
                    $(BuiltinRule::$variant => stringify!($name),)*
                }
            }
        }
    };
}

include!("stats_fields.rs");

/// What a `Snapshot` is read from.
pub(crate) struct Sources<'a> {
    stats: &'a Stats,
    vhost: Option<u32>,
    usage: Usage,
    /// The store's health, in the totals only.
    store: &'a StoreHealth,
}

impl Engine {
    /// Stats for one vhost or, with `None`, all of them.
    pub fn snapshot(&self, vhost: Option<u32>) -> Snapshot {
        let store = match vhost {
            None => self.store.health(),
            Some(_) => StoreHealth::default(),
        };
        self.snapshot_with(vhost, &store)
    }

    fn snapshot_with(&self, vhost: Option<u32>, store: &StoreHealth) -> Snapshot {
        Snapshot::read(&Sources {
            stats: &self.stats,
            vhost,
            usage: self.store.usage(vhost),
            store,
        })
    }

    /// All stats as JSON: totals, listener counters, then each vhost, with refusals by rule,
    /// and the store's health section when it keeps one (`"remote"`, `"shm"`).
    pub fn stats_json(&self) -> String {
        let health = self.store.health();
        let total = self.snapshot_with(None, &health);
        let vhost = |out: &mut String, v: Option<u32>, s: &Snapshot| {
            write_json(out, s.fields(), &[Group::Vhost, Group::Refusals], |out| {
                for rule in 0..self.policy.len() {
                    let sep = if rule == 0 { "" } else { "," };
                    let _ = write!(
                        out,
                        "{sep}\"{}\":{}",
                        json_escape(self.policy.name(rule)),
                        self.stats.refusals(v, rule)
                    );
                }
            });
        };
        let mut out = String::from("{\"total\":{");
        vhost(&mut out, None, &total);
        out.push('}');
        json_object(&mut out, "listener", total.fields(), Group::Listener);
        out.push_str(",\"vhosts\":{");
        for (i, v) in self.vhosts.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(out, "{sep}\"{}\":{{", json_escape(&v.name));
            vhost(&mut out, Some(v.index), &self.snapshot(Some(v.index)));
            out.push('}');
        }
        out.push('}');
        match health.section {
            "remote" => json_object(&mut out, "remote", total.fields(), Group::Remote),
            "shm" => json_object(
                &mut out,
                "shm",
                ShmHealth::read(&health).fields(),
                Group::Shm,
            ),
            _ => {}
        }
        out.push('}');
        out
    }
}

/// Writes `,"name":{...}` of the fields of `group`.
fn json_object(
    out: &mut String,
    name: &str,
    fields: impl Iterator<Item = (&'static Field, u64)>,
    group: Group,
) {
    let _ = write!(out, ",\"{name}\":{{");
    write_json(out, fields, &[group], |_| {});
    out.push('}');
}

/// Writes `"key":value` for each field of `fields` in the `shown` groups, comma-separated; the
/// value of the refusals field is written by `refusals` (an object by rule).
fn write_json(
    out: &mut String,
    fields: impl Iterator<Item = (&'static Field, u64)>,
    shown: &[Group],
    refusals: impl Fn(&mut String),
) {
    let mut sep = "";
    for (f, value) in fields.filter(|(f, _)| shown.contains(&f.group)) {
        let _ = write!(out, "{sep}\"{}\":", f.group.json_key(f.name));
        match f.group {
            Group::Refusals => {
                out.push('{');
                refusals(out);
                out.push('}');
            }
            _ => {
                let _ = write!(out, "{value}");
            }
        }
        sep = ",";
    }
}

fn json_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect()
}

/// Counter cells: per vhost its events then one per policy rule, then the listener's. Owned by
/// the process, or in a shared mapping (the shm store's) so every worker counts in one place.
pub type Cells = Box<dyn AsRef<[AtomicU64]> + Send + Sync>;

pub struct Stats {
    cells: Cells,
    vhosts: usize,
    stride: usize,
}

impl Stats {
    pub fn new(vhosts: usize, rules: usize) -> Stats {
        let cells: Box<[AtomicU64]> = (0..Stats::cells_needed(vhosts, rules))
            .map(|_| AtomicU64::new(0))
            .collect();
        Stats::with_cells(vhosts, rules, Box::new(cells)).expect("sized by cells_needed")
    }

    /// How many cells `with_cells` needs.
    pub fn cells_needed(vhosts: usize, rules: usize) -> usize {
        vhosts * (EVENTS + rules) + LISTENER_EVENTS
    }

    /// Stats kept in `cells` (for example shared memory); `None` when there are too few.
    pub fn with_cells(vhosts: usize, rules: usize, cells: Cells) -> Option<Stats> {
        if (*cells).as_ref().len() < Stats::cells_needed(vhosts, rules) {
            return None;
        }
        Some(Stats {
            cells,
            vhosts,
            stride: EVENTS + rules,
        })
    }

    fn cell(&self, i: usize) -> &AtomicU64 {
        &(*self.cells).as_ref()[i]
    }

    pub fn count(&self, vhost: u32, event: Event) {
        self.cell(vhost as usize * self.stride + event as usize)
            .fetch_add(1, Relaxed);
    }

    /// Takes back one `count` of this connection's (a hit on a connection that then failed).
    pub fn uncount(&self, vhost: u32, event: Event) {
        self.cell(vhost as usize * self.stride + event as usize)
            .fetch_sub(1, Relaxed);
    }

    pub fn refuse(&self, vhost: u32, rule: usize) {
        self.cell(vhost as usize * self.stride + EVENTS + rule)
            .fetch_add(1, Relaxed);
    }

    pub fn count_listener(&self, event: ListenerEvent) {
        self.cell(self.vhosts * self.stride + event as usize)
            .fetch_add(1, Relaxed);
    }

    pub fn listener(&self, event: ListenerEvent) -> u64 {
        self.cell(self.vhosts * self.stride + event as usize)
            .load(Relaxed)
    }

    fn sum(&self, vhost: Option<u32>, read: impl Fn(usize) -> u64) -> u64 {
        match vhost {
            Some(v) => read(v as usize * self.stride),
            // Wrapping: shared cells may hold anything another process wrote there.
            None => (0..self.vhosts).fold(0u64, |a, v| a.wrapping_add(read(v * self.stride))),
        }
    }

    /// An event's count for one vhost, or all with `None`.
    pub fn event(&self, vhost: Option<u32>, event: Event) -> u64 {
        self.sum(vhost, |row| self.cell(row + event as usize).load(Relaxed))
    }

    /// Refusals by one rule.
    pub fn refusals(&self, vhost: Option<u32>, rule: usize) -> u64 {
        self.sum(vhost, |row| self.cell(row + EVENTS + rule).load(Relaxed))
    }

    /// Refusals by every rule.
    pub fn all_refusals(&self, vhost: Option<u32>) -> u64 {
        self.sum(vhost, |row| {
            (EVENTS..self.stride).fold(0u64, |a, i| {
                a.wrapping_add(self.cell(row + i).load(Relaxed))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::policy::Policy;
    use crate::store::redis::RemoteStats;

    #[test]
    fn totals_sum_vhosts() {
        let s = Stats::new(2, 3);
        s.count(0, Event::Hit);
        s.count(1, Event::Hit);
        s.count(1, Event::Miss);
        s.refuse(0, 2);
        s.refuse(1, 2);
        s.refuse(1, 0);
        assert_eq!(s.event(None, Event::Hit), 2);
        assert_eq!(s.event(Some(1), Event::Miss), 1);
        assert_eq!(s.event(Some(0), Event::Miss), 0);
        assert_eq!(s.refusals(None, 2), 2);
        assert_eq!(s.all_refusals(Some(1)), 2);
        assert_eq!(s.all_refusals(None), 3);
        s.count_listener(ListenerEvent::UnknownSni);
        assert_eq!(s.listener(ListenerEvent::UnknownSni), 1);
        assert_eq!(s.listener(ListenerEvent::MalformedSni), 0);
        assert_eq!(s.event(None, Event::Hit), 2);
    }

    #[test]
    fn rules_are_declared_in_policy_order() {
        let p = Policy::default();
        let policy: Vec<&str> = (0..p.len()).map(|i| p.name(i)).collect();
        let declared: Vec<&str> = BuiltinRule::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(policy, declared);
    }

    /// A declared Redis or shm field reads a counter its store names in `Store::health` (a
    /// misspelt name would read 0).
    #[test]
    fn declared_store_fields_are_the_stores_counters() {
        let names = |h: StoreHealth| h.counters.iter().map(|(n, _)| *n).collect::<Vec<_>>();
        let remote: Vec<&str> = Snapshot::FIELDS
            .iter()
            .filter(|f| f.group == Group::Remote)
            .map(|f| f.group.json_key(f.name))
            .collect();
        assert_eq!(remote, names(RemoteStats::default().health()));
        #[cfg(all(target_os = "linux", not(miri)))]
        {
            let s = crate::store::shm::ShmStore::new(1 << 20, 1, 0).unwrap();
            let shm: Vec<&str> = ShmHealth::FIELDS.iter().map(|f| f.name).collect();
            assert_eq!(shm, names(crate::store::Store::health(&s)));
        }
    }

    #[test]
    fn too_few_cells_are_refused() {
        let cells: Box<[AtomicU64]> = (0..Stats::cells_needed(2, 3) - 1)
            .map(|_| AtomicU64::new(0))
            .collect();
        assert!(Stats::with_cells(2, 3, Box::new(cells)).is_none());
    }
}
