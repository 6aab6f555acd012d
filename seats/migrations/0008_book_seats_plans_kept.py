"""seatline_book_seats() with plans that are made once per connection (see 0005 for what the
function does; its arguments, locks, rules and rows are unchanged).

PL/pgSQL keeps a plan per statement, but for a statement whose generic plan looks dearer
than one made for the call's own values it plans again on every call. The seat lock, the
seat update and the end of emptied holds took their ids as one array (`id = ANY(...)`), whose
generic plan assumes ten of them: they were planned anew for every booking, about a sixth of
the function's time (perf, pgbench calling the function). Here each seat (and hold) is
locked and updated by its own statement on the primary key, in ascending id order as before
(the ids are sorted here when the caller did not sort them), and lock_timeout is set by an
assignment instead of a statement. An empty list of seats, or one naming a seat twice, is
refused (SQLSTATE 22023) instead of being booked as zero seats or refused as unknown; the
API refuses both before it calls. Nothing is created on other databases.
"""

import importlib

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

CREATE = r"""
CREATE OR REPLACE FUNCTION seatline_book_seats(
    p_customer integer,
    p_event bigint,
    p_seat_ids bigint[],   -- NULL: every seat of the hold p_hold
    p_hold bigint,         -- NULL: book p_seat_ids straight from the map
    p_now timestamptz,     -- NULL: the clock, read where the Python path reads it
    p_hide_drafts boolean, -- a draft answers not_found (the API, for non-staff)
    p_lock_timeout text
) RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    v_event record;
    v_hold_ended timestamptz;
    v_hold_expires timestamptz;
    v_hold_id bigint;
    v_ids bigint[];
    v_now timestamptz;
    v_locked bigint[] := '{}';
    v_states text[] := '{}';
    v_holds bigint[] := '{}';
    v_prices numeric[] := '{}';
    v_missing bigint[] := '{}';
    v_mine bigint[] := '{}';
    v_free bigint[] := '{}';
    v_taken bigint[] := '{}';
    v_replaced bigint[] := '{}';
    v_was_held integer := 0;
    v_owned integer;
    v_total numeric := 0;
    v_booking bigint;
    v_row record;
    v_seats jsonb := '[]';
    v_seat jsonb;
    v_id bigint;
    v_ignored text;
BEGIN
    -- An assignment, not a statement: PL/pgSQL evaluates it without the executor.
    v_ignored := set_config('lock_timeout', p_lock_timeout, true);

    SELECT id, name, sale_state, max_seats_per_customer INTO v_event
      FROM events_event WHERE id = p_event;
    IF NOT FOUND OR (p_hide_drafts AND v_event.sale_state = 'draft') THEN
        RAISE EXCEPTION USING ERRCODE = 'SL001', MESSAGE = 'refused',
            DETAIL = jsonb_build_object('code', 'no_event')::text;
    END IF;
    IF v_event.sale_state <> 'on_sale' THEN
        RAISE EXCEPTION USING ERRCODE = 'SL001', MESSAGE = 'refused',
            DETAIL = jsonb_build_object('code', 'sale_not_open', 'name', v_event.name,
                                        'sale_state', v_event.sale_state)::text;
    END IF;

    -- Lock order: customer, hold, seats, event.
    PERFORM 1 FROM auth_user WHERE id = p_customer FOR UPDATE;

    v_now := coalesce(p_now, clock_timestamp());
    SELECT id INTO v_hold_id FROM seats_hold
     WHERE customer_id = p_customer AND event_id = p_event
       AND ended_at IS NULL AND expires_at > v_now
     ORDER BY expires_at DESC LIMIT 1;
    IF v_hold_id IS NOT NULL THEN
        SELECT ended_at, expires_at INTO v_hold_ended, v_hold_expires FROM seats_hold
         WHERE id = v_hold_id FOR UPDATE;
        IF NOT (v_hold_ended IS NULL AND v_hold_expires > v_now) THEN
            v_hold_id := NULL;  -- ended while we waited for its lock
        END IF;
    END IF;

    IF p_hold IS NOT NULL AND v_hold_id IS DISTINCT FROM p_hold THEN
        IF EXISTS (SELECT 1 FROM seats_hold WHERE id = p_hold
                    AND customer_id = p_customer AND event_id = p_event) THEN
            RAISE EXCEPTION USING ERRCODE = 'SL001', MESSAGE = 'refused',
                DETAIL = jsonb_build_object('code', 'hold_not_active')::text;
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'SL001', MESSAGE = 'refused',
            DETAIL = jsonb_build_object('code', 'no_hold')::text;
    END IF;

    IF p_seat_ids IS NOT NULL THEN
        -- Ascending (the lock order), sorted here when the caller did not. No seat, or one
        -- twice, is a caller's bug (the API refuses both before it calls): nothing is booked.
        v_ids := p_seat_ids;
        IF cardinality(v_ids) = 0 THEN
            RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'seatline_book_seats: no seats';
        END IF;
        FOR i IN 2 .. cardinality(v_ids) LOOP
            IF v_ids[i] <= v_ids[i - 1] THEN
                v_ids := ARRAY(SELECT DISTINCT s FROM unnest(p_seat_ids) AS s ORDER BY s);
                IF cardinality(v_ids) < cardinality(p_seat_ids) THEN
                    RAISE EXCEPTION USING ERRCODE = '22023',
                        MESSAGE = 'seatline_book_seats: a seat is listed twice';
                END IF;
                EXIT;
            END IF;
        END LOOP;
    ELSE
        SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO v_ids FROM seats_seat
         WHERE hold_id = v_hold_id;
        IF cardinality(v_ids) = 0 THEN
            RAISE EXCEPTION USING ERRCODE = 'SL001', MESSAGE = 'refused',
                DETAIL = jsonb_build_object('code', 'hold_empty')::text;
        END IF;
    END IF;

    -- The seats, locked in primary-key order, claimed one by one: the customer's own held
    -- seats, free ones (a seat under a lapsed hold is free), and the rest taken. One seat per
    -- statement, so that PL/pgSQL keeps its plan (see the module docstring).
    FOREACH v_id IN ARRAY v_ids LOOP
        SELECT s.id, s.state, s.hold_id, s.price INTO v_row FROM seats_seat s
         WHERE s.id = v_id AND s.event_id = p_event FOR UPDATE;
        IF NOT FOUND THEN
            v_missing := v_missing || v_id;
            CONTINUE;
        END IF;
        v_locked := v_locked || v_row.id;
        v_states := v_states || v_row.state::text;
        v_holds := v_holds || v_row.hold_id;
        v_prices := v_prices || v_row.price;
        v_total := v_total + v_row.price;
        IF v_row.state = 'held' THEN
            v_was_held := v_was_held + 1;  -- counters follow the stored state
        END IF;
    END LOOP;
    IF cardinality(v_missing) > 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'SL001', MESSAGE = 'refused',
            DETAIL = jsonb_build_object('code', 'unknown_seats', 'seats', v_missing)::text;
    END IF;

    -- Read after the lock waits: an expiry that passed meanwhile counts.
    v_now := coalesce(p_now, clock_timestamp());
    IF v_hold_id IS NOT NULL AND NOT (v_hold_ended IS NULL AND v_hold_expires > v_now) THEN
        IF p_hold IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'SL001', MESSAGE = 'refused',
                DETAIL = jsonb_build_object('code', 'hold_expired')::text;
        END IF;
        v_hold_id := NULL;
    END IF;

    FOR i IN 1 .. cardinality(v_locked) LOOP
        IF v_hold_id IS NOT NULL AND v_holds[i] = v_hold_id THEN
            v_mine := v_mine || v_locked[i];
        ELSIF v_states[i] = 'available' OR (v_states[i] = 'held' AND EXISTS (
                SELECT 1 FROM seats_hold h WHERE h.id = v_holds[i]
                   AND (h.ended_at IS NOT NULL OR h.expires_at <= v_now))) THEN
            v_free := v_free || v_locked[i];
            IF v_holds[i] IS NOT NULL THEN
                v_replaced := v_replaced || v_holds[i];
            END IF;
        ELSE
            v_taken := v_taken || v_locked[i];
        END IF;
    END LOOP;
    IF cardinality(v_taken) > 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'SL001', MESSAGE = 'refused',
            DETAIL = jsonb_build_object('code', 'seats_unavailable', 'seats', v_taken)::text;
    END IF;

    -- The customer's seat limit (their row is locked): seats under their active holds plus
    -- seats of their active bookings, for this event.
    SELECT (SELECT count(*) FROM seats_seat s JOIN seats_hold h ON h.id = s.hold_id
             WHERE s.event_id = p_event AND h.customer_id = p_customer
               AND h.event_id = p_event AND h.ended_at IS NULL AND h.expires_at > v_now)
         + (SELECT count(*) FROM seats_bookingseat bs JOIN seats_booking bk ON bk.id = bs.booking_id
             WHERE bk.event_id = p_event AND bk.customer_id = p_customer AND bs.active)
      INTO v_owned;
    IF v_owned + cardinality(v_free) > v_event.max_seats_per_customer THEN
        RAISE EXCEPTION USING ERRCODE = 'SL001', MESSAGE = 'refused',
            DETAIL = jsonb_build_object('code', 'limit_exceeded', 'seats', v_free,
                                        'owned', v_owned,
                                        'max', v_event.max_seats_per_customer)::text;
    END IF;

    INSERT INTO seats_booking (event_id, customer_id, created_at, total, cancelled_at)
    VALUES (p_event, p_customer, v_now, v_total, NULL) RETURNING id INTO v_booking;
    -- The partial unique index one_active_booking_per_seat is the last line of defence.
    INSERT INTO seats_bookingseat (booking_id, seat_id, price, active)
    SELECT v_booking, seat, price, true FROM unnest(v_locked, v_prices) AS b(seat, price);

    -- One seat per statement, in id order, as the locks.
    FOREACH v_id IN ARRAY v_locked LOOP
        UPDATE seats_seat SET state = 'sold', hold_id = NULL WHERE id = v_id
        RETURNING jsonb_build_object(
            'id', id, 'section', section, 'row_label', row_label, 'number', number,
            'x', x, 'y', y, 'price', price::text, 'state', state, 'wheelchair', wheelchair,
            'companion', companion, 'restricted_view', restricted_view)
        INTO v_seat;
        v_seats := v_seats || jsonb_build_array(v_seat);
    END LOOP;

    -- End the holds the seats left empty, without waiting for a hold's lock (that would
    -- break the lock order): whoever holds it ends it or keeps it. Lapsed ones expired; the
    -- customer's own was booked.
    -- One hold per statement, as the seats.
    FOREACH v_id IN ARRAY array_append(v_replaced, v_hold_id) LOOP
        CONTINUE WHEN v_id IS NULL;
        UPDATE seats_hold h
           SET ended_at = v_now,
               end_reason = CASE WHEN h.id = v_hold_id THEN 'booked' ELSE 'expired' END
         WHERE h.id IN (SELECT l.id FROM seats_hold l
                         WHERE l.id = v_id AND l.ended_at IS NULL FOR UPDATE SKIP LOCKED)
           AND NOT EXISTS (SELECT 1 FROM seats_seat s WHERE s.hold_id = h.id);
    END LOOP;

    -- The event row lock comes last and is held only for this and the commit. Sales may
    -- have closed since the first read: checked again under the lock.
    UPDATE events_event
       SET version = version + 1,
           seats_available = seats_available - (cardinality(v_locked) - v_was_held),
           seats_held = seats_held - v_was_held,
           seats_sold = seats_sold + cardinality(v_locked)
     WHERE id = p_event AND sale_state = 'on_sale'
    RETURNING version, seats_available, seats_held, seats_sold, seats_blocked INTO v_row;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'SL001', MESSAGE = 'refused',
            DETAIL = jsonb_build_object('code', 'sale_closed')::text;
    END IF;

    -- What viewers saw before: a seat under a lapsed hold already looked free.
    INSERT INTO seats_seatchange (event_id, seat_id, from_state, to_state, version, at,
                                  actor_id, cause)
    SELECT p_event, v_locked[i],
           CASE WHEN v_locked[i] = ANY(v_mine) THEN v_states[i] ELSE 'available' END,
           'sold', v_row.version, v_now, p_customer, 'book'
      FROM generate_subscripts(v_locked, 1) AS i ORDER BY i;

    RETURN jsonb_build_object(
        'booking', v_booking, 'created_at', v_now, 'total', v_total::text,
        'version', v_row.version,
        'counts', jsonb_build_object('available', v_row.seats_available,
                                     'held', v_row.seats_held, 'sold', v_row.seats_sold,
                                     'blocked', v_row.seats_blocked),
        'seats', v_seats);
END;
$$;
"""


def create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def restore(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Back to 0005's function."""
    if schema_editor.connection.vendor == "postgresql":
        previous = importlib.import_module("seats.migrations.0005_book_seats_function")
        schema_editor.execute(previous.CREATE)


class Migration(migrations.Migration):
    dependencies = [("seats", "0007_book_seats_once_function")]

    operations = [migrations.RunPython(create, restore)]
