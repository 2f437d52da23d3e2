"""An in-memory, OpenAI-compatible Batch + Files API server, for the demo and the tests.

It follows OpenAI's published OpenAPI description (``openai/openai-openapi``; every JSON
response validates against the trimmed copy in ``tests/data/openai-openapi-batch.yaml``,
which ``tests/simulator/test_openai_simulator.py`` checks through the official ``openai``
SDK) and OpenAI's batch guide for what the description leaves out (result-file lines,
``batch_expired``, ``cancelling``). It shares the Mistral simulator's generic pieces: the
settings, the gateway, the fault injector and fault layer, the request schedule and its ``sim_*``
directives (``batchwatch.simulator.lifecycle``), the status timeline (``timelines``), the file
store (``file_store``) and the sliced download (``downloads``), the ``/_sim`` request counts
and history/stats routes (``control``), the app assembly (``assembly``), and the token numbers
of its bodies. Its own names say OpenAI (``OpenAISimulation``, ``OpenAIApiError``...).

The modules, split along responsibilities, each importing only those above it:

* ``errors``: OpenAI's error body and ``OpenAIApiError``, which answers with it.
* ``fault_profile``: ``OPENAI_FAULTS``, how the shared fault layer fakes this API's failures
  (its routes, required fields, error body).
* ``lifecycle``: a batch's plan and OpenAI's status timeline, pure functions of the clock.
* ``bodies``: plausible request and response bodies per endpoint, and their token usage.
* ``files``: the Files API's records (``file-…`` ids, expiry, listing), uploads.
* ``inputs``: an input file's request lines and OpenAI's validation of them.
* ``results``: the output and error files an ended batch writes; seeded batches' input.
* ``batches``: the batch records (spec, held batch, Batch object at one instant, page).
* ``simulation``: all the state behind one lock, and the operations the routes call.
* ``routes``: ``/v1/batches`` and the ``/_sim`` control routes.
* ``files_routes``: ``/v1/files``.
* ``app``: ``create_app`` and ``build``: OpenAI's key check and error handlers, assembled
  (``assembly``) behind the shared gateway (count, delay) and fault layer; served by
  ``batchwatch.simulator.server`` (``start_in_thread(settings, provider="openai")``).
"""
