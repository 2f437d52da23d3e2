"""An in-memory, Mistral-compatible batch + files API server, for the demo and the tests.

It follows docs/mistral-api.md and Mistral's OpenAPI spec (every response validates against
it; ``tests/simulator/test_simulator.py`` checks that through the official SDK). It depends
on nothing of the product it stands in for: only the domain types (``batchwatch.models``)
and Mistral's shapes as the provider package defines them (``wire.job_to_json`` for a job,
``schemas.CreateBatchJobIn`` for a create body). Its own names are its own (``SimApiError``,
``SimJobQuery``, ``create_sim_app``...), never a product name with another meaning.

The modules, split along responsibilities, each importing only those above it:

* ``api_errors``: Mistral's error body and ``SimApiError``, which answers with it.
* ``faults``: the fault names, what each does to a response, and the rules asking for them.
* ``settings``: ``SimulatorSettings``, the one frozen settings object.
* ``timelines``: ``StatusEntry`` and a status timeline's rules (a cancel's cut, the status
  at an instant), whatever the provider's status enum; shared by all three.
* ``lifecycle``: a job's plan and status timeline, pure functions of the clock.
* ``file_store``: ``FileStore``, files by id, rendered lazily; shared with ``openai/``.
* ``files``: the Files API's records, uploads, and the requests a batch reads.
* ``bodies``: plausible request and response bodies per endpoint (usage, padding).
* ``results``: the output and error files a finished job writes; seeded jobs' input file.
* ``jobs``: the job records (spec, held job, view serialised by ``wire``, list query).
* ``fault_injector``: the rules in force, the seeded dice, the request log; ``/_sim/faults``.
* ``control``: what every provider's simulation shares for ``/_sim``: ``RequestCounts``
  (the base class counting ``/v1`` requests) and the history and stats routes.
* ``simulation``: all the state behind one lock, and the operations the routes call.
* ``routes``: ``/v1/batch/jobs`` and the ``/_sim`` control routes.
* ``downloads``: a file's download, streamed in slices; shared with ``openai/``.
* ``files_routes``: ``/v1/files``.
* ``fault_layer``: the ASGI middleware that produces faults, down to closing the socket.
* ``gateway``: what every provider's gateway does before a ``/v1`` route (count, delay,
  then the provider's own refusal: a bad key, a missing version header).
* ``assembly``: ``assemble_app``, how every provider's app is put together (routers,
  gateway, provider middleware, fault layer).
* ``app``: ``create_sim_app``, the routers behind the gateway (count, delay, auth).
* ``providers``: which simulator serves which provider (``openai/``, ``anthropic/``).
* ``server``: uvicorn wiring: ``start_in_thread`` (``RunningSimulator``) and ``serve``.
"""
