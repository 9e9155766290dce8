// Every counter snicache shows, and the policy's rule names, declared once. `stats.rs` includes
// this file: the macros make the engine's counter cells (`Event`, `ListenerEvent`), the
// `#[repr(C)]` structs `snicache_stats` (`Snapshot`) and `snicache_shm_health` (`ShmHealth`),
// their field tables and the stats JSON of them. build.rs reads it too and writes into the C
// header those structs and the X-macros `SNICACHE_STATS_FIELDS`, `SNICACHE_SHM_HEALTH_FIELDS`
// and `SNICACHE_RULES`, which the nginx modules expand for their status and Prometheus text.
//
// An entry is `field: kind source, "help";`
//   kind    the Prometheus type: `counter` (its family is named FIELD_total) or `gauge`.
//   source  where the value comes from, which also says where it is shown:
//           `event(V)`: the engine's `Event::V`, and `usage(f)`: the store's `Usage::f`
//             (group `vhost`: per vhost and in total);
//           `refusals`: refusals by every rule (group `refusals`: per vhost; the JSON and the
//             Prometheus text show them by rule instead);
//           `listener(V)`: the engine's `ListenerEvent::V` (group `listener`, totals only);
//           `remote(f)`: the counter `f` of a Redis store's `Store::health` (group `remote`,
//             totals only; the JSON key drops the `remote_` prefix);
//           `health(f)`: the counter `f` of the shm store's `Store::health` (group `shm`).
// Help texts are one line without backslashes (they are C strings and Prometheus HELP too).
// Fields are only ever added at the end of their list: the C structs are an ABI.

stats_fields! {
    hits: counter event(Hit),
        "Sessions handed back for resumption (session ids and tickets).";
    misses: counter event(Miss),
        "Offered session ids not found (or expired in the store).";
    stores: counter event(Store),
        "Sessions stored.";
    store_errors: counter event(StoreError),
        "Sessions the store refused or failed to store.";
    evictions: counter usage(evictions),
        "Sessions evicted to stay within the memory or entry bound.";
    expirations: counter usage(expirations),
        "Sessions found expired in the store.";
    entries: gauge usage(entries),
        "Sessions in the store now.";
    bytes: gauge usage(bytes),
        "Bytes the store charges now (records plus per-entry overhead).";
    refusals: counter refusals,
        "Resumptions refused by a policy rule.";
    corrupt: counter event(Corrupt),
        "Stored records or tickets that failed to decode.";
    bad_ids: counter event(BadId),
        "Offered session ids that were unusable (over 32 bytes).";
    invalidations: counter event(Invalidation),
        "Sessions invalidated after a fatal alert.";
    ticket_unknown_key: counter event(TicketUnknownKey),
        "Tickets naming a key this vhost does not have: another vhost's, or past its window.";
    ticket_forged: counter event(TicketForged),
        "Tickets that failed authentication: forged, truncated or corrupted.";
    ticket_renewed: counter event(TicketRenewed),
        "Tickets accepted under a decrypt-only key and renewed under the current one.";
    pending: counter event(Pending),
        "Lookups the store answered pending (the handshake paused, or went on in full where the host library cannot pause).";
    remote_hits: counter remote(hits),
        "Local misses the remote store answered.";
    remote_misses: counter remote(misses),
        "Local misses the remote store did not have either.";
    remote_timeouts: counter remote(timeouts),
        "Remote lookups or writes cut off by their time budget.";
    remote_errors: counter remote(errors),
        "Remote lookups or writes that failed otherwise (refused, dropped, pool exhausted).";
    remote_seal_failures: counter remote(seal_failures),
        "Remote records that failed to open: altered, moved to another key or vhost, or sealed under an unknown key (each a miss).";
    remote_breaker_state: gauge remote(breaker_state),
        "Circuit breaker now: 0 closed, 1 open (the remote store is skipped), 2 half-open.";
    remote_breaker_trips: counter remote(breaker_trips),
        "Times the circuit breaker opened.";
    remote_breaker_skips: counter remote(breaker_skips),
        "Remote lookups and writes skipped while the breaker was open.";
    remote_writes: counter remote(writes),
        "Records written to the remote store.";
    remote_write_drops: counter remote(write_drops),
        "Remote writes dropped (queue full or remote store unavailable).";
    remote_fetches: counter remote(fetches),
        "Background fetches started for paused handshakes (snicache_config_set_async_lookup).";
    remote_fetch_drops: counter remote(fetch_drops),
        "Lookups that went on in full at once because too many background fetches were under way.";
    early_data_accepted: counter event(EarlyDataAccepted),
        "Early data accepted: the handshake took its ticket's single-use entry (snicache_config_set_early_data).";
    early_data_replayed: counter event(EarlyDataReplayed),
        "Early data refused because the ticket's entry was already taken (a replay) or absent.";
    unknown_sni: counter listener(UnknownSni),
        "ClientHellos naming no vhost (served by the default vhost, or refused with strict SNI).";
    malformed_sni: counter listener(MalformedSni),
        "ClientHellos with a malformed server_name extension (refused with illegal_parameter).";
    hrr_sni_changed: counter listener(HrrSniChanged),
        "Second ClientHellos (after a HelloRetryRequest) naming another server than the first (refused with illegal_parameter).";
    single_use: counter event(SingleUse),
        "Sessions removed when resumed because their vhost is single-use (SNICACHE_VHOST_SINGLE_USE).";
}

shm_health_fields! {
    lock_timeouts: counter health(lock_timeouts),
        "Shared store lock waits that timed out because a live holder was too slow (each a counted miss, or a counted store error for a put).";
    lock_errors: counter health(lock_errors),
        "Shared store locks found taken over by another process while held (the holder was declared stuck: its lock word unchanged for 200 ms, or scribbled on).";
    owner_dead: counter health(owner_dead),
        "Shared store locks taken over from a process that died holding them.";
    repairs: counter health(repairs),
        "Shared store shards emptied (their sessions lost) because they were left half-written, or found inconsistent or with a garbage lock word.";
    corrupt: counter health(corrupt),
        "Shared store entries whose checksum did not match: dropped, never handed out.";
    mapped_bytes: gauge health(mapped_bytes),
        "Bytes of the shared store mapping.";
}

// The built-in policy rules, in policy order: `name: Variant, "refuses when";`. A rule's name
// is its refusal reason in the stats and logs.
rules! {
    vhost: Vhost,
        "The session or ticket belongs to another virtual host.";
    sni: Sni,
        "The SNI differs from the session's (ASCII case-insensitive; absent differs from present).";
    invalidated: Invalidated,
        "A connection that used or was issued the session or ticket ended with a fatal alert.";
    expired: Expired,
        "The session is older than the vhost's lifetime (at most 24 h).";
    version: Version,
        "The connection negotiated another protocol version.";
    cipher: Cipher,
        "The session's suite (TLS 1.3: every suite of its hash) is no longer enabled on the vhost.";
    ems: Ems,
        "Extended master secret use differs between session and ClientHello, or neither has it.";
}
