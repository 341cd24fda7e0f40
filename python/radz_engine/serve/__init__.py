"""`radz serve`: a DICOM node that scores radiographs and answers with DICOM SR.

    storescu / PACS --C-STORE--> scp.py --spool + journal--> scoring (Engine.submit)
        --> sr.py (Comprehensive SR, highdicom) --> delivery.py --C-STORE--> PACS

Modules, one job each:
    config      ServeConfig: every option of `radz serve`, validated
    journal     SQLite (WAL) record of every instance: received -> scored -> delivered
    spool       atomic, fsynced files for received datasets and the SRs made from them
    checks      what a received dataset must satisfy (SOP class, modality, pixels, limits)
    sr          the Comprehensive SR of one scored instance
    delivery    C-STORE of SRs to the PACS, retried with back-off while it is down
    scp         the pynetdicom SCP: C-ECHO, C-STORE, calling-AE allow-list, TLS
    server      RadzServer: ties them together, recovers pending work after a restart
    http        /healthz and /metrics (prometheus-client) on loopback

The `radz serve` command is radz_engine/cli/serve.py. Needs the `serve` extra (pynetdicom, highdicom, prometheus-client).
"""
