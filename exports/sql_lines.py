"""The common export's JSONL lines, written by PostgreSQL: the build's fast path on that database.

The common export (``trl_preference`` or ``reward_pairs`` of a K = 2 campaign, without gold, tokenizer
or embedding comparison: ``_Build._fast_k2``) in JSONL was bound by Python where measured: about 6 µs
a row to receive the row as ``str`` objects and 5 µs to build a dict and encode it, on one core,
while the database used the other for 7 µs. Here the page query decides each task's fate and writes
its line around the two responses, as bytes; Python escapes the two responses with orjson (several
times faster than PostgreSQL 15's ``to_json``, which goes character by character, where measured)
and joins the pieces. Pages are read on two connections at once
(:func:`selectors.read_in_parallel`), so that the database works on both cores.

The lines are byte-identical to those :func:`formats.k2_pair_rows` and orjson write (tests build both
ways over awkward data):

* strings: PostgreSQL's JSON escaping (``to_json(text)``, and the text form of a ``jsonb`` string,
  used for the prompt) escapes what orjson escapes, the same way: ``"``, ``\\``, ``\\b \\f \\n
  \\r \\t``, other control characters as lowercase ``\\u00xx``; DEL, U+2028, U+2029 and every
  other character stay UTF-8.
* floats: ``float8`` output (``extra_float_digits`` > 0, PostgreSQL's default, checked by the query)
  and orjson both write the shortest digits that read back to the same double, in the same notation
  from 1e-4 up to 1e15, except that PostgreSQL writes an integral value without ``.0``, which the
  query adds. Outside that range the notations differ (``1e-05`` and ``0.00001``).
* keys in column order, no spaces; the constant ``campaign_agreement`` is encoded once by orjson.
* the split: SHA-256 of the prompt's key below :func:`formats.test_split_bound`.

Each row comes back with a route (:data:`TRAIN` ... :data:`BELOW_RATERS`): a line for one split, a
drop counted as the Python path counts it, or :data:`PYTHON` with the raw columns of what the query
cannot decide exactly, which then goes through :func:`formats.k2_pair_rows` at its place in the file:
chat prompts (rendered by ``plain_chat_format``), pairs whose near-duplicate check needs the full
normalisation (their first characters do not settle it, see :func:`formats.same_text`), rank vectors
other than ``[1, 2]``, ``[2, 1]`` and ``[1, 1]``, margins outside the range above, tasks missing a
response.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import orjson
import psycopg
from django.db import connection

from annotations.models import Judgment, Response, Task, TaskConsensus
from exports import formats
from exports.writers import jsonl_line

TRAIN, TEST, PYTHON, EXCLUDED, BELOW_MARGIN, TIE, NEAR_DUPLICATE, BELOW_RATERS = range(8)
_DROPPED = {EXCLUDED: "excluded_rater_tasks", BELOW_RATERS: formats.DROP_RATERS, BELOW_MARGIN: formats.DROP_MARGIN,
            TIE: formats.DROP_TIE, NEAR_DUPLICATE: formats.DROP_DUPLICATE}
_REJECTED = b',"rejected":'


def available() -> bool:
    """Whether the database can write the lines (PostgreSQL; elsewhere Python writes them)."""
    return connection.vendor == "postgresql"


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def task_windows(campaign_id: int, chunk: int) -> Iterator[tuple[int, int]]:
    """Keyset windows ``(low, high]`` of at most ``chunk`` of the campaign's task ids, in order, each
    found by one short statement; the last ends at the last task there is when it is asked for, so
    the windows end as the page loop of :func:`selectors.iter_source_tasks` does. Windows are fixed
    before their pages are read, so two connections can read consecutive pages at once."""
    sql = (f"SELECT max(id) FROM (SELECT id FROM {_table(Task)} WHERE campaign_id = %s AND id > %s "
           "ORDER BY id LIMIT %s) window_ids")
    low = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, [campaign_id, low, chunk])
            high = cursor.fetchone()[0]
        if high is None:
            return
        yield low, high
        low = high


def _fold(code: str) -> str:
    """A printable ASCII first character as :func:`formats.same_text` folds it (lower case)."""
    return f"(CASE WHEN {code} BETWEEN 65 AND 90 THEN {code} + 32 ELSE {code} END)"


def _float_json(column: str) -> str:
    """A float column as orjson writes it, within the range the query checks (see above)."""
    return f"(CASE WHEN {column} = trunc({column}) THEN {column}::text || '.0' ELSE {column}::text END)"


def page_query(opts: formats.Options, *, campaign_id: int, excluded: list[int]) -> tuple[str, dict]:
    """The page query of a build and its parameters but the window's (``low``, ``high``: see
    :func:`read_page`): one row per task in id order, ``route, head, first, second, tail, margin,
    raw``. A line of :data:`TRAIN` or :data:`TEST` is ``head``, the chosen response (``first``),
    ``,"rejected":``, the rejected one (``second``) and ``tail``. A :data:`PYTHON` row has the
    responses by position in ``first`` and ``second``, its margin, and in ``raw`` a JSON array of the
    other columns :func:`formats.k2_pair_rows` reads. Each nesting level computes once what the next
    uses several times (``OFFSET 0`` keeps the planner from inlining, and so repeating, it)."""
    params: dict = {"campaign": campaign_id, "agreement": orjson.dumps(opts.agreement).decode()}
    routes = []  # (condition, route): the first that holds decides, in the order k2_pair_rows decides
    if excluded:
        routes.append((f"EXISTS (SELECT 1 FROM {_table(Judgment)} j WHERE j.task_id = b.id AND j.campaign_id = "
                       "%(campaign)s AND NOT j.voided AND j.expert_id = ANY(%(excluded)s))", EXCLUDED))
        params["excluded"] = excluded
    routes.append(("b.t0 IS NULL OR b.t1 IS NULL OR b.gap IS NULL OR b.margin IS NULL", PYTHON))
    if opts.min_raters is not None:
        routes.append(("b.n_raters < %(min_raters)s::int", BELOW_RATERS))
        params["min_raters"] = opts.min_raters
    if opts.min_margin is not None:
        routes.append(("b.margin < %(min_margin)s::float8", BELOW_MARGIN))
        params["min_margin"] = opts.min_margin
    if opts.drop_ties:
        routes.append(("b.gap = 0", TIE))
    if opts.drop_near_duplicates:
        # Equal texts are duplicates; otherwise the first characters settle most pairs, Python the rest.
        routes.append(('b.t0 = b.t1 COLLATE "C"', NEAR_DUPLICATE))
        routes.append((f"NOT (b.a0 BETWEEN 33 AND 126 AND b.a1 BETWEEN 33 AND 126 AND "
                       f"{_fold('b.a0')} <> {_fold('b.a1')})", PYTHON))
    routes.append(("jsonb_typeof(b.prompt) <> 'string'", PYTHON))
    routes.append(("NOT (b.margin = 0 OR abs(b.margin) >= 1e-4) OR NOT abs(b.margin) < 1e15 "
                   "OR NOT (SELECT current_setting('extra_float_digits')::int > 0)", PYTHON))
    if opts.test_fraction > 0:
        routes.append(("substring(sha256(convert_to('s:' || (b.prompt #>> '{}'), 'UTF8')) FROM 1 FOR 8) "
                       "< %(test_bound)s", TEST))
        params["test_bound"] = formats.test_split_bound(opts.test_fraction)
    route = "CASE " + " ".join(f"WHEN {condition} THEN {code}" for condition, code in routes) + f" ELSE {TRAIN} END"

    def pick(column: str, chosen: bool) -> str:
        """The chosen or rejected response's ``column``: position 0 unless position 1 ranks better."""
        first, second = (0, 1) if chosen else (1, 0)
        return f"CASE WHEN r.gap >= 0 THEN r.{column}{first} ELSE r.{column}{second} END"

    margin = _float_json("r.margin")
    tail = [("margin", margin)] if opts.format == formats.REWARD_PAIRS else []
    tail += [("external_id", "to_json(r.external_id)"), ("n_raters", "r.n_raters"), ("consensus_margin", margin),
             ("campaign_agreement", "%(agreement)s::text"), ("chosen_model", f"to_json({pick('m', True)})"),
             ("rejected_model", f"to_json({pick('m', False)})")]
    tail_pieces = [piece for key, value in tail for piece in (f"""',"{key}":'""", value)] + ["E'}\\n'"]
    rendered = f"r.route <= {TEST}"
    python = f"r.route = {PYTHON}"
    raw = "json_build_array(r.external_id, r.prompt::text, r.ranks::text, r.n_raters, r.m0, r.m1)::text"
    task, consensus, response = _table(Task), _table(TaskConsensus), _table(Response)
    sql = f"""
        SELECT r.route,
               CASE WHEN {rendered} THEN convert_to('{{"prompt":' || r.prompt::text || ',"chosen":', 'UTF8') END,
               CASE WHEN {rendered} THEN {pick('t', True)} WHEN {python} THEN r.t0 END,
               CASE WHEN {rendered} THEN {pick('t', False)} WHEN {python} THEN r.t1 END,
               CASE WHEN {rendered} THEN convert_to(concat({", ".join(tail_pieces)}), 'UTF8') END,
               CASE WHEN {python} THEN r.margin END,
               CASE WHEN {python} THEN {raw} END
        FROM (
            SELECT b.*, {route} AS route
            FROM (
                SELECT t.id, t.external_id, t.prompt, c.ranks, c.margin, c.n_raters,
                       r0.model_name AS m0, r0.text AS t0, r1.model_name AS m1, r1.text AS t1,
                       ascii(r0.text) AS a0, ascii(r1.text) AS a1,
                       CASE c.ranks WHEN '[1, 2]' THEN 1 WHEN '[2, 1]' THEN -1 WHEN '[1, 1]' THEN 0 END AS gap
                FROM {task} t
                JOIN {consensus} c ON c.task_id = t.id AND c.task_id > %(low)s AND c.task_id <= %(high)s
                LEFT JOIN {response} r0 ON r0.task_id = t.id AND r0.position = 0
                    AND r0.task_id > %(low)s AND r0.task_id <= %(high)s
                LEFT JOIN {response} r1 ON r1.task_id = t.id AND r1.position = 1
                    AND r1.task_id > %(low)s AND r1.task_id <= %(high)s
                WHERE t.campaign_id = %(campaign)s AND t.is_gold = FALSE AND t.id > %(low)s AND t.id <= %(high)s
                ORDER BY t.id OFFSET 0
            ) b
            ORDER BY b.id OFFSET 0
        ) r
        ORDER BY r.id
    """
    return sql, params


def read_page(sql: str, params: dict, window: tuple[int, int]) -> list[tuple]:
    """The rows of one window, on this thread's connection. Results come in binary, so that the pieces
    the database wrote arrive as ``bytes`` (``bytea`` copied as it is), not decoded into ``str``."""
    connection.ensure_connection()
    low, high = window
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, {**params, "low": low, "high": high}, binary=True)
        return cursor.fetchall()


def page_lines(rows: list[tuple], opts: formats.Options, dropped: Counter) -> tuple[list[bytes], list[bytes]]:
    """The (train, test) lines of one page, in task order, counting drops in ``dropped``. The database
    wrote all of a line but the two responses, the longest strings, which orjson escapes several times
    faster than PostgreSQL's ``to_json`` (SIMD; PostgreSQL 15 goes character by character)."""
    train: list[bytes] = []
    test: list[bytes] = []
    dumps, join = orjson.dumps, b"".join
    for route, head, first, second, tail, margin, raw in rows:
        if route == TRAIN:
            train.append(join((head, dumps(first), _REJECTED, dumps(second), tail)))
        elif route == TEST:
            test.append(join((head, dumps(first), _REJECTED, dumps(second), tail)))
        elif route == PYTHON:
            external_id, prompt, ranks, n_raters, m0, m1 = orjson.loads(raw)
            rows_train, rows_test = formats.k2_pair_rows(
                [(None, external_id, prompt, False, None, None, ranks, None, margin, n_raters, m0, first, m1, second)],
                opts, dropped)
            train += map(jsonl_line, rows_train)
            test += map(jsonl_line, rows_test)
        else:
            dropped[_DROPPED[route]] += 1
    return train, test
