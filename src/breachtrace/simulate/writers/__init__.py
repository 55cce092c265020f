"""Writers for each output format: Windows JSON, auth.log, Zeek TSV, VPN CSV, context CSVs."""
