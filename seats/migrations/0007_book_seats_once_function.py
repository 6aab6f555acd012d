"""seatline_book_seats_once(): a booking sent with an Idempotency-Key in one statement (see
seats.idempotency and the README's "Bookings in one round trip"). Nothing is created on
other databases.

It claims the key the way seats.idempotency._claim does (the key row first: a concurrent
duplicate's insert waits for this statement to commit, then finds its answer), books through
seatline_book_seats, and stores the booking's answer (201 and its JSON body) in the key row,
all in the statement's own transaction: the seat and event locks are released the moment it
commits, never held across a round trip to the web process.

It answers only what the database alone can: the key already answered (or used for another
request) comes back as {"stored": {"fingerprint", "status", "body"}} with nothing changed. A
refusal raises as seatline_book_seats does and takes the key row with it, so the caller stores
the refusal in a transaction of its own (seats.idempotency.respond_once).
"""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

CREATE = r"""
CREATE OR REPLACE FUNCTION seatline_book_seats_once(
    p_key text,
    p_fingerprint text,
    p_expired_before timestamptz,  -- a key created at or before this is as good as unused
    p_customer integer,
    p_event bigint,
    p_seat_ids bigint[],
    p_hold bigint,
    p_now timestamptz,
    p_hide_drafts boolean,
    p_lock_timeout text
) RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    v_key record;
    v_done jsonb;
    v_answer text;
BEGIN
    PERFORM set_config('lock_timeout', p_lock_timeout, true);

    -- Lock order: the key row, then seatline_book_seats's (customer, hold, seats, event).
    LOOP
        INSERT INTO seats_idempotencykey (customer_id, key, fingerprint, status, body, created_at)
        VALUES (p_customer, p_key, p_fingerprint, NULL, '', coalesce(p_now, clock_timestamp()))
        ON CONFLICT ON CONSTRAINT idempotency_key_once DO NOTHING
        RETURNING id INTO v_key;
        EXIT WHEN FOUND;
        SELECT id, fingerprint, status, body, created_at INTO v_key FROM seats_idempotencykey
         WHERE customer_id = p_customer AND key = p_key FOR UPDATE;
        CONTINUE WHEN NOT FOUND;  -- pruned since the insert found it: insert it again
        IF v_key.created_at <= p_expired_before THEN
            UPDATE seats_idempotencykey
               SET fingerprint = p_fingerprint, status = NULL, body = '',
                   created_at = coalesce(p_now, clock_timestamp())
             WHERE id = v_key.id;
            EXIT;
        END IF;
        IF v_key.fingerprint <> p_fingerprint OR v_key.status IS NOT NULL THEN
            RETURN jsonb_build_object('stored', jsonb_build_object(
                'fingerprint', v_key.fingerprint, 'status', v_key.status, 'body', v_key.body));
        END IF;
        EXIT;  -- a row without an answer (not written by this function): book, as _claim does
    END LOOP;

    v_done := seatline_book_seats(p_customer, p_event, p_seat_ids, p_hold, p_now,
                                  p_hide_drafts, p_lock_timeout);
    -- The API's answer to a booking: {"booking", "seats" (ids, ascending), "total"}.
    v_answer := jsonb_build_object(
        'booking', v_done->'booking',
        'seats', (SELECT jsonb_agg((s.seat->>'id')::bigint ORDER BY (s.seat->>'id')::bigint)
                    FROM jsonb_array_elements(v_done->'seats') AS s(seat)),
        'total', v_done->'total')::text;
    UPDATE seats_idempotencykey SET status = 201, body = v_answer
     WHERE customer_id = p_customer AND key = p_key;
    RETURN v_done || jsonb_build_object('answer', v_answer);
END;
$$;
"""

DROP = """DROP FUNCTION IF EXISTS seatline_book_seats_once(
    text, text, timestamptz, integer, bigint, bigint[], bigint, timestamptz, boolean, text);"""


def create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("seats", "0006_booking_customer_event")]

    operations = [migrations.RunPython(create, drop)]
