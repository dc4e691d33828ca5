"""`python -m tailor.contract [--check]`: regenerate the SQL checks' field rules from the JSON Schemas."""

from tailor.contract.spec import main

raise SystemExit(main())
