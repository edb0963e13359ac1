"""The audit log's vocabulary: event names, results, and the reason codes an event is recorded with.

Every audit row and every ``faceauth_*_decisions_total`` metric label comes from here (web tier and CLI alike);
the browser never sees a reason code. Codes derived from the services' proto enums (``LIVENESS_*``,
``VERIFY_*``) are made in ``decision.py`` from the generated code.
"""

from __future__ import annotations

# Results.
SUCCESS = "success"
FAILURE = "failure"
ERROR = "error"

# Events.
LOGIN = "login"
ENROLL = "enroll"
ENROLL_DELETE = "enroll_delete"
FLASH_CALIBRATION = "flash_calibration"  # an admin's capture checked by liveness only (no sign-in)
REGISTER = "register"
LOGOUT = "logout"
SESSION_REVOKE = "session_revoke"
RATE_LIMIT = "rate_limit"
ADMIN_DISABLE = "admin_disable"
ADMIN_ENABLE = "admin_enable"
ADMIN_DELETE = "admin_delete"
ADMIN_CREATE = "admin_create"  # CLI
PASSWORD_SET = "password_set"  # noqa: S105 (an event name) — CLI
IMPORT_TEMPLATES = "import_templates"  # CLI
TEMPLATES_REENCRYPT = "templates_reencrypt"  # CLI

PASSKEY_ADD = "passkey_add"
PASSKEY_REMOVE = "passkey_remove"
PASSKEY_RENAME = "passkey_rename"

# Reason codes (result "failure" unless noted).
OK = "OK"
BAD_PASSWORD = "BAD_PASSWORD"  # noqa: S105 (a reason code)
NO_PASSWORD_SET = "NO_PASSWORD_SET"  # noqa: S105 (a reason code)
UNKNOWN_USER = "UNKNOWN_USER"
DISABLED = "DISABLED"
LOCKED = "LOCKED"
NO_TEMPLATES = "NO_TEMPLATES"
TEMPLATES_OUTDATED = "TEMPLATES_OUTDATED"
BAD_REQUEST = "BAD_REQUEST"  # not audited: a request without a username
BAD_USERNAME = "BAD_USERNAME"  # not audited: a name no account can have
CHALLENGE_INVALID = "CHALLENGE_INVALID"  # unknown, used, expired, or issued for another purpose or user
CHALLENGE_MISMATCH = "CHALLENGE_SESSION_MISMATCH"  # issued to another browser session
RATE_LIMITED = "RATE_LIMITED"
BAD_CAPTURE = "BAD_CAPTURE"
CHALLENGE_LATE = "CHALLENGE_LATE"  # the capture came later than the page could have sent it
CAPTURE_TOO_EARLY = "CAPTURE_TOO_EARLY"  # sooner than its frames (or the flash sequence) could have been captured
# A flash was sent but liveness did not report checking it (LIVENESS_CHECKS without `flash`): fail closed.
FLASH_NOT_CHECKED = "FLASH_NOT_CHECKED"
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"  # result "error"
ENROLL_TOO_FEW_FACES = "ENROLL_TOO_FEW_FACES"
ENROLL_INCONSISTENT_IDENTITY = "ENROLL_INCONSISTENT_IDENTITY"
LIVENESS_UNSPECIFIED = "LIVENESS_UNSPECIFIED"  # the service answered "not live" without saying why
VERIFY_UNSPECIFIED = "VERIFY_UNSPECIFIED"  # the service answered "no match" without saying why
# The login's steps (login_flow.py) and passkeys (passkeys.py).
PASSKEY_FALLBACK = "PASSKEY_FALLBACK"  # result "success": signed in with a passkey after the face check failed
FALLBACK_NOT_ALLOWED = "FALLBACK_NOT_ALLOWED"  # the passkey fallback without a failed face, or policy forbids it
STEP_OUT_OF_ORDER = "STEP_OUT_OF_ORDER"  # a step asked for without the steps before it (or after they expired)
PASSKEY_INVALID = "PASSKEY_INVALID"  # the assertion or attestation did not verify (origin, RP id, signature, UV)
PASSKEY_UNKNOWN = "PASSKEY_UNKNOWN"  # no such credential
PASSKEY_OTHER_USER = "PASSKEY_OTHER_USER"  # the credential belongs to another account than the one claimed
PASSKEY_SIGN_COUNT = "PASSKEY_SIGN_COUNT"  # the signature counter went back (a cloned authenticator)

# -- accounts: re-authentication, recovery links, self-service, admin actions (reauth.py, recovery.py) ----------
PASSWORD_CHANGE = "password_change"  # noqa: S105 (an event name) — the account page or a recovery link
EMAIL_CHANGE = "email_change"
STEP_UP = "step_up"  # a sensitive change refused for want of a fresh ceremony (reason NOT_FRESH)
RECOVERY_ISSUE = "recovery_issue"  # a recovery link issued (details: purpose, channel)
RECOVERY_USE = "recovery_use"  # a recovery link followed (success) or refused (the LINK_* reasons)
RECOVERY_REQUEST = "recovery_request"  # "Forgot password or face?": OK (mailed) or NO_ADDRESS
ADMIN_RESET_FACE = "admin_reset_face"
ADMIN_UNLOCK = "admin_unlock"

NOT_FRESH = "NOT_FRESH"
LINK_UNKNOWN = "LINK_UNKNOWN"
LINK_USED = "LINK_USED"
LINK_EXPIRED = "LINK_EXPIRED"
LINK_REVOKED = "LINK_REVOKED"  # a newer link for the same purpose replaced it
NO_ADDRESS = "NO_ADDRESS"  # no active account with that username or e-mail address, or none with an address
MAIL_FAILED = "MAIL_FAILED"  # result "error": the SMTP server could not be reached or refused the mail
BAD_CURRENT_PASSWORD = "BAD_CURRENT_PASSWORD"  # noqa: S105 (a reason code)

#: The events listed on the account page as "Security activity" (read from the audit log, successes only).
SECURITY_EVENTS = (
    ENROLL,
    ENROLL_DELETE,
    PASSWORD_CHANGE,
    PASSWORD_SET,
    EMAIL_CHANGE,
    RECOVERY_ISSUE,
    RECOVERY_USE,
    ADMIN_RESET_FACE,
    ADMIN_UNLOCK,
    ADMIN_DISABLE,
    ADMIN_ENABLE,
    ADMIN_CREATE,
    PASSKEY_ADD,
    PASSKEY_REMOVE,
    PASSKEY_RENAME,
)

# -- the OpenID Connect provider, forward-auth, clients and groups (oidc.py, blueprints/oidc.py) ----------------
OIDC_AUTHORIZE = "oidc_authorize"  # a code issued to a client (success) or the user said no (ACCESS_DENIED)
OIDC_TOKEN = "oidc_token"  # noqa: S105 (an event name) — tokens issued, or a family revoked (the reuse reasons)
OIDC_CONSENT_REVOKE = "oidc_consent_revoke"
CLIENT_CREATE = "client_create"
CLIENT_DELETE = "client_delete"
CLIENT_ROTATE_SECRET = "client_rotate_secret"  # noqa: S105 (an event name)
SIGNING_KEY_ROTATE = "signing_key_rotate"
ADMIN_SET_GROUPS = "admin_set_groups"

ACCESS_DENIED = "ACCESS_DENIED"  # the user refused the consent screen
OIDC_REFRESH_REUSE = "REFRESH_TOKEN_REUSED"  # a spent refresh token again → its family revoked
OIDC_CODE_REUSE = "CODE_REUSED"  # a spent authorization code again → what it issued is revoked
