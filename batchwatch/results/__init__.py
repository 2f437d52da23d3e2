"""Results of ended jobs: their files downloaded, a ledger of every request, retries of what
did not succeed."""
