"""The live rotation drill behind ``rotsafe drill``.

A rig (database, Secrets Manager, user, secret) is set up, two services run
the same query loop against it while the secret is rotated, and the figures
of both are reported side by side.
"""
