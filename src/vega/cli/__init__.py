"""Front ends: argv and environment in; text or JSON out; an exit code."""
