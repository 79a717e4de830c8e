"""The PostgreSQL store's schema, its version, and the migrations between versions.

``batchmig store init`` creates the schema, ``batchmig store upgrade`` applies the
migrations a newer batchmig brings, and a runner refuses a store whose version it
does not know (older: upgrade it; newer: upgrade batchmig). Migrations run in one
transaction under a transaction-scoped advisory lock, so two operators upgrading at
once do not race, and nothing relies on session state (PgBouncer in transaction mode).

Every table is prefixed ``batchmig_`` so the store can share a database. All times
are the database's (``now()``/``clock_timestamp()``): runners never stamp shared
rows with their own clocks. Credentials are never written here: plans only
reference them, and errors are redacted before they are journaled.
"""

from __future__ import annotations

from batchmig.journal import UNRESOLVED_CALL_SQL, UNRESOLVED_SQL

SCHEMA_VERSION = 4
MIGRATION_LOCK = 0x62617463  # pg_advisory_xact_lock key ("batc")

_V1 = r"""
CREATE TABLE batchmig_schema (
    version integer NOT NULL,
    upgraded timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE batchmig_runs (
    id text PRIMARY KEY,
    plan_name text NOT NULL,
    plan_text bytea NOT NULL,
    plan_sha256 text NOT NULL,
    meta jsonb NOT NULL DEFAULT '{}',
    created timestamptz NOT NULL DEFAULT now(),
    blocked text
);

CREATE TABLE batchmig_instances (
    run text NOT NULL REFERENCES batchmig_runs (id) ON DELETE CASCADE,
    id text NOT NULL,
    position integer NOT NULL,
    provider text NOT NULL,
    wave text NOT NULL,
    wave_index integer NOT NULL,
    canary boolean NOT NULL DEFAULT false,
    status text NOT NULL DEFAULT 'pending',
    step integer NOT NULL DEFAULT 0,
    step_name text,
    outputs jsonb NOT NULL DEFAULT '{}',
    error jsonb,
    updated timestamptz NOT NULL DEFAULT now(),
    owner text,
    epoch bigint NOT NULL DEFAULT 0,
    lease_until timestamptz,
    PRIMARY KEY (run, id)
);
CREATE INDEX batchmig_instances_open ON batchmig_instances (run, wave_index, position)
    WHERE status NOT IN ('succeeded', 'failed', 'skipped');
CREATE INDEX batchmig_instances_owner ON batchmig_instances (run, owner) WHERE owner IS NOT NULL;

CREATE TABLE batchmig_steps (
    run text NOT NULL,
    instance text NOT NULL,
    step integer NOT NULL,
    name text NOT NULL,
    started timestamptz,
    ended timestamptz,
    status text NOT NULL,
    PRIMARY KEY (run, instance, step),
    FOREIGN KEY (run, instance) REFERENCES batchmig_instances (run, id) ON DELETE CASCADE
);

CREATE TABLE batchmig_calls (
    run text NOT NULL,
    id bigint NOT NULL,
    instance text NOT NULL,
    step integer NOT NULL,
    action text NOT NULL,
    resource text,
    state text NOT NULL,
    sent timestamptz NOT NULL,
    finished timestamptz,
    outputs jsonb,
    request_id text,
    error jsonb,
    runner text NOT NULL,
    epoch bigint NOT NULL,
    PRIMARY KEY (run, id),
    FOREIGN KEY (run, instance) REFERENCES batchmig_instances (run, id) ON DELETE CASCADE
);
CREATE INDEX batchmig_calls_open ON batchmig_calls (run, instance) WHERE state = 'intent';

CREATE TABLE batchmig_cutovers (
    run text NOT NULL,
    instance text NOT NULL,
    released timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run, instance),
    FOREIGN KEY (run, instance) REFERENCES batchmig_instances (run, id) ON DELETE CASCADE
);

-- Who worked on a run: shown by `batchmig runners`; never used to decide liveness
-- (leases on the instances decide that).
CREATE TABLE batchmig_runners (
    run text NOT NULL REFERENCES batchmig_runs (id) ON DELETE CASCADE,
    id text NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    version text NOT NULL,
    limiter text NOT NULL,
    started timestamptz NOT NULL DEFAULT now(),
    heartbeat timestamptz NOT NULL DEFAULT now(),
    stopped timestamptz,
    PRIMARY KEY (run, id)
);

-- One row per rate-limit key (provider/account/region/action), shared by every run.
CREATE TABLE batchmig_rate_keys (
    key text PRIMARY KEY,
    cap integer NOT NULL,
    reduced_to double precision,
    reduced_at timestamptz,
    paused_until timestamptz,
    throttled bigint NOT NULL DEFAULT 0,
    slots timestamptz[] NOT NULL DEFAULT '{}'
);

-- Capacity shares: the calls per window each runner may send for a key.
CREATE TABLE batchmig_rate_shares (
    key text NOT NULL REFERENCES batchmig_rate_keys (key) ON DELETE CASCADE,
    runner text NOT NULL,
    run text NOT NULL,
    share integer NOT NULL DEFAULT 0,
    previous integer NOT NULL DEFAULT 0,
    previous_until timestamptz,
    demand integer NOT NULL DEFAULT 0,
    cap integer NOT NULL,
    lease_until timestamptz NOT NULL,
    PRIMARY KEY (key, runner)
);

-- The effective rate of a key at time t: its cap, or the throttle-reduced rate
-- climbing back by p_recovery calls per second each second.
CREATE FUNCTION batchmig_key_rate(r batchmig_rate_keys, p_cap integer, t timestamptz, p_recovery double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN r.reduced_at IS NULL THEN least(p_cap, r.cap)::double precision
           ELSE least(least(p_cap, r.cap)::double precision,
                      r.reduced_to + p_recovery * greatest(0, extract(epoch FROM t - r.reduced_at)))
           END
$$;

-- Claim up to p_want instances of one wave for p_runner, in wave order: instances a
-- runner left (expired lease) first, then new ones. Claims serialize on the run row
-- (concurrency limits and the failure budget are counted across runners); SKIP
-- LOCKED keeps a claim off rows another transaction is writing.
CREATE FUNCTION batchmig_claim(
    p_run text, p_runner text, p_wave integer, p_want integer, p_ttl double precision,
    p_wave_cap integer, p_run_cap integer, p_max_failed integer
) RETURNS TABLE (id text, epoch bigint, status text, step integer, step_name text, outputs jsonb,
                 error jsonb, intents jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_held_wave integer;
    v_held_run integer;
    v_failed integer;
    v_canaries_ok boolean;
    v_room integer;
BEGIN
    PERFORM 1 FROM batchmig_runs WHERE batchmig_runs.id = p_run FOR UPDATE;
    SELECT count(*) FILTER (WHERE i.wave_index = p_wave),
           count(*)
      INTO v_held_wave, v_held_run
      FROM batchmig_instances i
     WHERE i.run = p_run AND i.owner IS NOT NULL AND i.lease_until >= now()
       AND i.status NOT IN ('succeeded', 'failed', 'skipped', 'awaiting_cutover');
    SELECT count(*) FILTER (WHERE i.status = 'failed'),
           coalesce(bool_and(i.status = 'succeeded') FILTER (WHERE i.canary), true)
      INTO v_failed, v_canaries_ok
      FROM batchmig_instances i WHERE i.run = p_run AND i.wave_index = p_wave;
    v_room := least(p_want, p_wave_cap - v_held_wave, p_run_cap - v_held_run);
    RETURN QUERY
    WITH chosen AS (
        SELECT i.run, i.id FROM batchmig_instances i
         WHERE i.run = p_run
           -- another runner's expired lease (a runner never claims what it still works on)
           AND (i.owner IS NULL OR (i.lease_until < now() AND i.owner <> p_runner))
           AND (
                 -- released cutovers, from any wave
                 (i.status = 'awaiting_cutover'
                  AND EXISTS (SELECT 1 FROM batchmig_cutovers c WHERE c.run = i.run AND c.instance = i.id))
              OR (i.wave_index = p_wave AND i.status IN ('running', 'interrupted', 'pending')
                  AND (i.canary OR v_canaries_ok)
                  AND (i.status <> 'pending' OR v_failed <= p_max_failed))
           )
         ORDER BY (i.status = 'pending'), i.wave_index, i.position
         LIMIT greatest(v_room, 0)
         FOR UPDATE SKIP LOCKED
    )
    UPDATE batchmig_instances AS i
       SET owner = p_runner, epoch = i.epoch + 1, lease_until = now() + make_interval(secs => p_ttl)
      FROM chosen
     WHERE i.run = chosen.run AND i.id = chosen.id
    RETURNING i.id, i.epoch, i.status, i.step, i.step_name, i.outputs, i.error,
        (SELECT coalesce(jsonb_agg(jsonb_build_object('id', c.id, 'step', c.step, 'action', c.action,
                                                      'resource', c.resource) ORDER BY c.id), '[]')
           FROM batchmig_calls c WHERE c.run = i.run AND c.instance = i.id AND c.state = 'intent');
END
$$;

-- Exact limiter mode: reserve one call of a key in the shared sliding log (the
-- algorithm of ratelimit.py: evenly spaced, at most floor(rate) per window + margin)
-- and return how long the caller waits, read from clock_timestamp() at the end.
CREATE FUNCTION batchmig_reserve(
    p_key text, p_cap integer, p_window double precision, p_margin double precision,
    p_recovery double precision
) RETURNS double precision LANGUAGE plpgsql AS $$
DECLARE
    r batchmig_rate_keys;
    t timestamptz;
    v_allowed integer;
    v_span interval := make_interval(secs => p_window + p_margin);
    v_slot timestamptz;
    v_n integer;
BEGIN
    INSERT INTO batchmig_rate_keys (key, cap) VALUES (p_key, p_cap) ON CONFLICT (key) DO NOTHING;
    SELECT * INTO r FROM batchmig_rate_keys WHERE key = p_key FOR UPDATE;
    t := clock_timestamp();
    v_allowed := greatest(1, floor(batchmig_key_rate(r, p_cap, t, p_recovery) + 1e-9))::integer;
    v_slot := greatest(t, coalesce(r.paused_until, t));
    v_n := coalesce(array_length(r.slots, 1), 0);
    IF v_n > 0 AND v_allowed <= 200 THEN
        v_slot := greatest(v_slot, r.slots[v_n] + v_span / v_allowed);
    END IF;
    IF v_n >= v_allowed THEN
        v_slot := greatest(v_slot, r.slots[v_n - v_allowed + 1] + v_span);
    END IF;
    UPDATE batchmig_rate_keys
       SET slots = (r.slots || v_slot)[greatest(1, v_n + 2 - greatest(p_cap, r.cap)):v_n + 1]
     WHERE key = p_key;
    RETURN extract(epoch FROM v_slot - clock_timestamp());
END
$$;

-- A throttle seen by any runner lowers the key for every runner and every run: the
-- rate halves (once per window) and the key pauses; every listener hears of it.
CREATE FUNCTION batchmig_penalize(
    p_key text, p_cap integer, p_retry_after double precision, p_window double precision,
    p_margin double precision, p_recovery double precision, p_min_rate double precision
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r batchmig_rate_keys;
    t timestamptz;
    v_span interval := make_interval(secs => p_window + p_margin);
BEGIN
    INSERT INTO batchmig_rate_keys (key, cap) VALUES (p_key, p_cap) ON CONFLICT (key) DO NOTHING;
    SELECT * INTO r FROM batchmig_rate_keys WHERE key = p_key FOR UPDATE;
    t := clock_timestamp();
    UPDATE batchmig_rate_keys
       SET reduced_to = CASE WHEN r.reduced_at IS NULL OR t - r.reduced_at > v_span
                             THEN greatest(p_min_rate, batchmig_key_rate(r, p_cap, t, p_recovery) / 2)
                             ELSE r.reduced_to END,
           reduced_at = CASE WHEN r.reduced_at IS NULL OR t - r.reduced_at > v_span THEN t
                             ELSE r.reduced_at END,
           paused_until = greatest(coalesce(r.paused_until, t),
                                   t + make_interval(secs => coalesce(p_retry_after, p_window + p_margin))),
           throttled = r.throttled + 1
     WHERE key = p_key;
    PERFORM pg_notify('batchmig_rate', p_key);
END
$$;

-- Capacity shares: set p_runner's demand for a key and return the share it may use
-- now, with the seconds the key stays paused. Shrink before grow: capacity a runner
-- gave up (or a dead runner held) is only handed out again one window (plus a grace)
-- after it was last usable, and a dead runner's share returns after its lease plus
-- one window. Shares are whole calls per window, so their sum never exceeds the rate.
CREATE FUNCTION batchmig_rebalance(
    p_key text, p_runner text, p_run text, p_cap integer, p_demand integer, p_ttl double precision,
    p_window double precision, p_margin double precision, p_recovery double precision
) RETURNS TABLE (share integer, paused double precision, rate integer)
LANGUAGE plpgsql AS $$
DECLARE
    r batchmig_rate_keys;
    t timestamptz;
    v_span interval := make_interval(secs => p_window + p_margin);
    v_grace interval := make_interval(secs => p_window + p_margin + 0.2);
    v_rate integer;
    v_left integer;
    v_count integer;
    v_target integer := 0;
    v_give integer;
    v_others integer;
    v_own batchmig_rate_shares;
    v_new integer;
    s record;
BEGIN
    INSERT INTO batchmig_rate_keys (key, cap) VALUES (p_key, p_cap) ON CONFLICT (key) DO NOTHING;
    SELECT * INTO r FROM batchmig_rate_keys WHERE key = p_key FOR UPDATE;
    t := clock_timestamp();
    DELETE FROM batchmig_rate_shares s0 WHERE s0.key = p_key AND s0.lease_until + v_span < t;
    INSERT INTO batchmig_rate_shares AS s1 (key, runner, run, cap, demand, lease_until)
         VALUES (p_key, p_runner, p_run, p_cap, p_demand, t + make_interval(secs => p_ttl))
    ON CONFLICT (key, runner) DO UPDATE
        SET demand = p_demand, cap = p_cap, lease_until = t + make_interval(secs => p_ttl);
    -- The lowest cap any live participant declares applies to all.
    SELECT least(min(s2.cap), r.cap) INTO v_rate FROM batchmig_rate_shares s2
     WHERE s2.key = p_key AND s2.lease_until >= t;
    v_rate := greatest(1, floor(batchmig_key_rate(r, v_rate, t, p_recovery) + 1e-9))::integer;
    -- Water-filling over live runners with demand: the smallest demands are met first.
    v_left := v_rate;
    SELECT count(*) INTO v_count FROM batchmig_rate_shares s3
     WHERE s3.key = p_key AND s3.lease_until >= t AND s3.demand > 0;
    FOR s IN SELECT s4.runner, s4.demand FROM batchmig_rate_shares s4
              WHERE s4.key = p_key AND s4.lease_until >= t AND s4.demand > 0
              ORDER BY s4.demand, s4.runner LOOP
        v_give := least(s.demand, v_left / v_count + CASE WHEN v_left % v_count > 0 THEN 1 ELSE 0 END);
        IF s.runner = p_runner THEN v_target := v_give; END IF;
        v_left := v_left - v_give;
        v_count := v_count - 1;
    END LOOP;
    -- What the others may still be using: their share, a share they gave up less than
    -- a window ago, and the share of a runner whose lease ran out (until it returns).
    SELECT coalesce(sum(greatest(s5.share,
                                 CASE WHEN s5.previous_until > t THEN s5.previous ELSE 0 END)), 0)
      INTO v_others FROM batchmig_rate_shares s5 WHERE s5.key = p_key AND s5.runner <> p_runner;
    SELECT * INTO v_own FROM batchmig_rate_shares s6 WHERE s6.key = p_key AND s6.runner = p_runner;
    IF v_target < v_own.share THEN
        v_new := v_target;
    ELSE
        v_new := greatest(v_own.share, least(v_target, v_rate - v_others));
        -- Own capacity given up recently is still ours to take back at once.
        v_new := greatest(v_new, least(v_target, CASE WHEN v_own.previous_until > t THEN v_own.previous ELSE 0 END));
    END IF;
    UPDATE batchmig_rate_shares s7
       SET share = v_new,
           previous = CASE WHEN v_new < v_own.share THEN v_own.share
                           WHEN v_own.previous_until > t THEN v_own.previous ELSE 0 END,
           previous_until = CASE WHEN v_new < v_own.share THEN t + v_grace ELSE v_own.previous_until END
     WHERE s7.key = p_key AND s7.runner = p_runner;
    IF v_new < v_target THEN
        PERFORM pg_notify('batchmig_rate', p_key);  -- starved: the others should shrink now
    END IF;
    share := v_new;
    paused := greatest(0, extract(epoch FROM coalesce(r.paused_until, t) - t));
    rate := v_rate;
    RETURN NEXT;
END
$$;
"""


def _claim_handing_over(v1: str, calls: str) -> str:
    """Version 1's claim function, made to hand over with each instance the calls
    matching the SQL condition ``calls`` (on ``c``, the call, and ``i``, its instance),
    each with its state."""
    start = v1.index("CREATE FUNCTION batchmig_claim(")
    claim = v1[start:v1.index("$$;", start) + 3]
    changes = {
        "CREATE FUNCTION batchmig_claim(": "CREATE OR REPLACE FUNCTION batchmig_claim(",
        "'resource', c.resource)": "'resource', c.resource, 'state', c.state)",
        "c.state = 'intent'": calls,
    }
    for old, new in changes.items():
        assert claim.count(old) == 1, old
        claim = claim.replace(old, new)
    return claim


def _unresolved_claims(v1: str) -> str:
    """Version 2: a claim hands over every call whose effect is not known, not only the
    intents — an ``unknown`` outcome whose reconcile a dead runner did not finish must be
    reconciled before anything is re-sent, exactly as in the SQLite journal."""
    return (f"DROP INDEX batchmig_calls_open;\n"
            f"CREATE INDEX batchmig_calls_open ON batchmig_calls (run, instance) WHERE {UNRESOLVED_SQL};\n"
            f"{_claim_handing_over(v1, f'c.{UNRESOLVED_SQL}')}\n")


_REQUESTS = r"""
-- Operator requests (`batchmig cutover`, `batchmig retry`): who asked, from where,
-- with which selection, and each instance's status at that moment (the report's
-- audit trail). A request and what it changes are one transaction.
CREATE TABLE batchmig_requests (
    run text NOT NULL REFERENCES batchmig_runs (id) ON DELETE CASCADE,
    id bigserial,
    kind text NOT NULL CHECK (kind IN ('cutover', 'retry')),
    at timestamptz NOT NULL DEFAULT now(),
    username text NOT NULL,
    host text NOT NULL,
    selection text NOT NULL DEFAULT '',
    instances jsonb NOT NULL,
    PRIMARY KEY (run, id)
);
"""


def _current_step_claims(v1: str) -> str:
    """Version 3: operator requests are journaled in the store; and a claim also hands
    over a call that took effect while its instance still stands at that call's step
    (journal.UNRESOLVED_CALL_SQL: the runner died between the outcome and the step's
    advance), so the new owner reconciles it instead of sending it again."""
    return (f"{_REQUESTS}\nDROP INDEX batchmig_calls_open;\n"
            f"CREATE INDEX batchmig_calls_instance ON batchmig_calls (run, instance, step);\n"
            f"{_claim_handing_over(v1, UNRESOLVED_CALL_SQL)}\n")


_PLAN_DETAILS = """
ALTER TABLE batchmig_instances ADD COLUMN tags jsonb NOT NULL DEFAULT '{}', ADD COLUMN cutover text;
"""
"""Version 4: each instance's plan tags and cutover policy (NULL in runs created before), so
``status`` shows them without the plan, as a run directory's journal does."""

MIGRATIONS: dict[int, str] = {1: _V1, 2: _unresolved_claims(_V1), 3: _current_step_claims(_V1), 4: _PLAN_DETAILS}
"""version -> the SQL that brings the schema from version - 1 to it."""
