"""An in-memory simulator of Anthropic's Message Batches API, for the demo and the tests.

It follows Anthropic's published API reference (docs.anthropic.com, "Message Batches") and
its OpenAPI description (``tests/data/anthropic-openapi-batches.yaml``: every response is
validated against it, and read by the official ``anthropic`` SDK, in
``tests/simulator/test_anthropic_simulator.py``). Served by ``server.start_in_thread(settings,
provider="anthropic")`` or ``serve(..., provider="anthropic")``; ``app.build(settings)``
returns ``(AnthropicSimulation, FastAPI)``.

Routes: ``POST /v1/messages/batches``, ``GET /v1/messages/batches`` (``limit`` 1-1000,
default 20; ``after_id`` / ``before_id``; newest first), ``GET``/``DELETE
/v1/messages/batches/{id}``, ``POST /v1/messages/batches/{id}/cancel``, ``GET
/v1/messages/batches/{id}/results`` (JSONL, not in request order); the ``/_sim`` control
routes (``routes``) and ``/_sim/faults`` / ``/_sim/requests`` (``fault_injector``).

Quirks of the real API it reproduces:

* ``request_counts`` keeps every request in ``processing`` until the batch ends, then splits
  them: progress is unknown while a batch is ``in_progress``.
* Results come in no particular order (a seeded shuffle, never the input order).
* A batch can answer 404 for a moment right after it was created: the first ``n``
  retrieves of a new batch answer 404 not_found_error, ``n`` from the directive
  ``sim_hidden_gets`` or the simulation's default (``hidden_gets``, 0 unless set by
  ``set_hidden_gets`` or ``POST /_sim/quirks``).

Directives (simulator-only; legal upstream, where they are just a user id), in
``params.metadata.user_id`` of the batch's FIRST request, ``;``-separated, e.g.
``"sim_outcome=expired;sim_failure_rate=0.25;sim_run_seconds=2"``:

* ``sim_outcome``: ``succeeded`` (default; every request processed) or ``expired`` (the
  24-hour limit hit: half the requests processed, the rest ``expired``).
* ``sim_queue_seconds``, ``sim_run_seconds``: override the settings' timings.
* ``sim_failure_rate``: the fraction (0-1) of processed requests that end ``errored``.
* ``sim_hidden_gets``: retrieves answering 404 before the batch is visible.

A bad value, or an unknown ``sim_`` key, is a 400 invalid_request_error.

The modules, each importing only those above it:

* ``errors``: Anthropic's error body, ``AnthropicApiError``, and the id shapes.
* ``lifecycle``: a batch's plan, status timeline, counts and per-request results, pure
  functions of the clock; the directives.
* ``batches``: the batch records and the one ``MessageBatch`` serialisation; the routes'
  paths.
* ``fault_profile``: ``ANTHROPIC_FAULTS``, how the shared fault layer fakes this API's
  failures (its routes, required fields, ``processing_status``, error body).
* ``results``: the JSONL results file, its order and its lines.
* ``simulation``: ``AnthropicSimulation``, all the state behind one lock.
* ``schemas``: the validated request bodies (create, bulk seeding, quirks).
* ``routes``: the ``/v1/messages/batches`` routes and the ``/_sim`` control routes (seeding,
  quirks; history and stats are the shared ``batchwatch.simulator.control``'s).
* ``app``: the request ids, Anthropic's checks (key, version header) for the shared
  ``Gateway``, the error handlers, and ``build`` (assembled by the shared ``assembly``).

Shared with the other simulators: ``timelines`` (``StatusEntry``, the cancel's cut),
``lifecycle.directive_number``, ``control`` (request counts, history and stats routes) and
``assembly``.
"""
