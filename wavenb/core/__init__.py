"""The pure core: constants, results, the API's rules, the poll schedule, errors. No network I/O."""
