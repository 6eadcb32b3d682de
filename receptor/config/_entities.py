"""The configuration entities ("config types" of the upstream cmdline library) and their fields.

The declarations follow upstream's registration order, struct field order, tags and texts
exactly: the help output, the bash completion script and several error messages are generated
from them.
"""

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

from receptor._goconv import parse_bool, parse_float, parse_int

__all__ = [
    "ENTITIES",
    "RELOADABLE_ENTITIES",
    "EntityType",
    "Field",
    "FieldType",
    "Section",
    "entity_by_name",
]


class FieldType(enum.Enum):
    """The Go type of a field: its name in error messages and its rendering in ``--help``."""

    STRING = ("string", "string")
    INT = ("int", "int")
    FLOAT = ("float64", "float64")
    BOOL = ("bool", "bool")
    STRING_LIST = ("[]string", "[]string (may be repeated)")
    FLOAT_MAP = ("map[string]float64", "JSON dict of string to float64")
    ANY_MAP = ("map[string]interface {}", "JSON dict with string keys")
    FIREWALL_RULES = (
        "[]netceptor.FirewallRuleData",
        "JSON list of JSON dict of JSON data to JSON data",
    )

    def __init__(self, go_type: str, help_type: str) -> None:
        self.go_type = go_type
        self.help_type = help_type


@dataclass(frozen=True)
class Field:
    """One parameter of an entity.

    ``name`` is the lower-case name used on the command line and in YAML; ``go_name`` the
    upstream struct field name (it appears in some upstream error messages).  ``default`` is
    the typed default value applied to an unset field, ``default_text`` its spelling in the
    help (None: no default, the field stays None when unset).
    """

    go_name: str
    type: FieldType
    description: str = ""
    default_text: str | None = None
    required: bool = False
    bare: bool = False
    name: str = dataclasses.field(init=False)
    default: Any = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.go_name.lower())
        object.__setattr__(self, "default", _default_value(self.type, self.default_text))


def _default_value(kind: FieldType, text: str | None) -> Any:
    if text is None:
        return None
    if kind is FieldType.STRING:
        return text
    if kind is FieldType.INT:
        return parse_int(text)
    if kind is FieldType.FLOAT:
        return parse_float(text)
    if kind is FieldType.BOOL:
        return parse_bool(text)
    raise ValueError(f"no default possible for a {kind.go_type} field")


@dataclass(frozen=True)
class Section:
    """A group of entities in the help output, sorted by ``order``."""

    description: str
    order: int


@dataclass(frozen=True)
class EntityType:
    """A kind of configuration item: ``--tcp-listener`` on the command line, ``tcp-listener:``
    in YAML.

    ``registered_name`` is the name as upstream registers it (``UDP-listener``); ``name`` its
    lower-case form, the only spelling a YAML file accepts.  ``required``: must be present
    (only ``node``, which is added implicitly); ``singleton``: at most once; ``exclusive``:
    nothing else may be configured with it; ``hidden``: left out of the help.  ``documented``
    is False for entities absent from the reference build whose help we reproduce
    (``work-kubernetes``): they parse normally but appear neither in the help nor in the bash
    completion.
    """

    registered_name: str
    description: str
    fields: tuple[Field, ...]
    section: Section | None = None
    required: bool = False
    singleton: bool = False
    exclusive: bool = False
    hidden: bool = False
    documented: bool = True
    name: str = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.registered_name.lower())

    def field(self, name: str) -> Field | None:
        """The field called ``name``, compared case-insensitively."""
        wanted = name.lower()
        for candidate in self.fields:
            if candidate.name == wanted:
                return candidate
        return None

    @property
    def bare_field(self) -> Field | None:
        """The field a bare value (no ``key=``) is assigned to, if the entity has one."""
        for candidate in self.fields:
            if candidate.bare:
                return candidate
        return None


_S = FieldType.STRING
_I = FieldType.INT
_F = FieldType.FLOAT
_B = FieldType.BOOL
_L = FieldType.STRING_LIST
_FM = FieldType.FLOAT_MAP

RESOURCES = Section("Commands that configure resources used by other commands:", 5)
BACKENDS = Section("Commands to configure back-ends, which connect Receptor nodes together:", 10)
SERVICES = Section("Commands to configure services that run on top of the Receptor mesh:", 20)
WORKERS = Section("Commands to configure workers that process units of work:", 30)
CERTIFICATES = Section("Commands to generate certificates and run a certificate authority", 40)

_COST = Field("Cost", _F, "Connection cost (weight)", "1.0")
_NODECOST = Field("NodeCost", _FM, "Per-node costs")
_ALLOWED = Field("AllowedPeers", _L, "Peer node IDs to allow via this connection")
_BIND = Field("BindAddr", _S, "Local address to bind to", "0.0.0.0")
_REDIAL = Field("Redial", _B, "Keep redialing on lost connection", "true")
_MINTLS13 = Field(
    "MinTLS13", _B, "Set minimum TLS version to 1.3. Otherwise the minimum is 1.2", "false"
)
_NOT_BEFORE = Field("NotBefore", _S, "Effective (NotBefore) date/time, in RFC3339 format")
_NOT_AFTER = Field("NotAfter", _S, "Expiration (NotAfter) date/time, in RFC3339 format")
_REMOTE_NODE = Field("RemoteNode", _S, "Receptor node to connect to", required=True)
_REMOTE_SERVICE = Field("RemoteService", _S, "Receptor service name to connect to", required=True)
_SERVICE_BIND = Field("Service", _S, "Receptor service name to bind to", required=True)
_WORKTYPE = Field("WorkType", _S, "Name for this worker type", required=True)
_VERIFY_SIGNATURE = Field("VerifySignature", _B, "Verify a signed work submission", "false")

ENTITIES: tuple[EntityType, ...] = (
    EntityType(
        "node",
        "Specifies the node configuration of this instance",
        (
            Field("ID", _S, "Node ID. Defaults to the local hostname.", bare=True),
            Field("DataDir", _S, "Directory in which to store node data.", "/tmp/receptor"),
            Field(
                "FirewallRules",
                FieldType.FIREWALL_RULES,
                "Firewall rules, see documentation for syntax.",
            ),
            Field(
                "MaxIdleConnectionTimeout",
                _S,
                "Maximum duration with no traffic before a backend connection is timed out "
                "and refreshed.",
            ),
            Field("ReceptorKubeSupportReconnect", _S),
            Field("ReceptorKubeClientsetQPS", _S),
            Field("ReceptorKubeClientsetBurst", _S),
            Field("ReceptorKubeClientsetRateLimiter", _S),
        ),
        required=True,
        singleton=True,
    ),
    EntityType(
        "local-only",
        "Runs a self-contained node with no backend",
        (Field("Local", _B),),
        singleton=True,
    ),
    EntityType("version", "Displays the Receptor version.", (), exclusive=True),
    EntityType(
        "log-level",
        "Specifies the verbosity level for command output",
        (Field("Level", _S, "Log level: Error, Warning, Info or Debug", "error", bare=True),),
        singleton=True,
    ),
    EntityType("trace", "Enables packet tracing output", (), singleton=True),
    EntityType(
        "tls-server",
        "Define a TLS server configuration",
        (
            Field("Name", _S, "Name of this TLS server configuration", required=True),
            Field("Cert", _S, "Server certificate filename", required=True),
            Field("Key", _S, "Server private key filename", required=True),
            Field("RequireClientCert", _B, "Require client certificates", "false"),
            Field("ClientCAs", _S, "Filename of CA bundle to verify client certs with"),
            Field("PinnedClientCert", _L, "Pinned fingerprint of required client certificate"),
            Field(
                "SkipReceptorNamesCheck",
                _B,
                "Skip verifying ReceptorNames OIDs in certificate at startup",
                "false",
            ),
            _MINTLS13,
        ),
        section=RESOURCES,
    ),
    EntityType(
        "tls-client",
        "Define a TLS client configuration",
        (
            Field("Name", _S, "Name of this TLS client configuration", required=True),
            Field("Cert", _S, "Client certificate filename", required=True),
            Field("Key", _S, "Client private key filename", required=True),
            Field("RootCAs", _S, "Root CA bundle to use instead of system trust"),
            Field("InsecureSkipVerify", _B, "Accept any server cert", "false"),
            Field("PinnedServerCert", _L, "Pinned fingerprint of required server certificate"),
            Field(
                "SkipReceptorNamesCheck",
                _B,
                "if true, skip verifying ReceptorNames OIDs in certificate at startup",
            ),
            _MINTLS13,
        ),
        section=RESOURCES,
    ),
    EntityType(
        "cert-init",
        "Initialize PKI CA",
        (
            Field("CommonName", _S, "Common name to assign to the certificate", required=True),
            Field(
                "Bits",
                _I,
                "Bit length of the encryption keys of the certificate",
                required=True,
            ),
            _NOT_BEFORE,
            _NOT_AFTER,
            Field("OutCert", _S, "File to save the CA certificate to", required=True),
            Field("OutKey", _S, "File to save the CA private key to", required=True),
        ),
        section=CERTIFICATES,
        exclusive=True,
    ),
    EntityType(
        "cert-makereq",
        "Create certificate request",
        (
            Field("CommonName", _S, "Common name to assign to the certificate", required=True),
            Field("Bits", _I, "Bit length of the encryption keys of the certificate"),
            Field("DNSName", _L, "DNS names to add to the certificate"),
            Field("IPAddress", _L, "IP addresses to add to the certificate"),
            Field("NodeID", _L, "Receptor node IDs to add to the certificate"),
            Field("OutReq", _S, "File to save the certificate request to", required=True),
            Field("InKey", _S, "Private key to use for the request"),
            Field("OutKey", _S, "File to save the private key to (new key will be generated)"),
        ),
        section=CERTIFICATES,
        exclusive=True,
    ),
    EntityType(
        "cert-signreq",
        "Sign request and produce certificate",
        (
            Field("Req", _S, "Certificate Request PEM filename", required=True),
            Field("CACert", _S, "CA certificate PEM filename", required=True),
            Field("CAKey", _S, "CA private key PEM filename", required=True),
            _NOT_BEFORE,
            _NOT_AFTER,
            Field("OutCert", _S, "File to save the signed certificate to", required=True),
            Field("Verify", _B, "If true, do not prompt the user for verification", "False"),
        ),
        section=CERTIFICATES,
        exclusive=True,
    ),
    EntityType(
        "control-service",
        "Runs a control service",
        (
            Field("Service", _S, "Receptor service name to listen on", "control"),
            Field(
                "Filename",
                _S,
                "Specifies the filename of a local Unix socket to bind to the service.",
            ),
            Field("Permissions", _I, "Socket file permissions", "0600"),
            Field("TLS", _S, "Name of TLS server config for the Receptor listener"),
            Field("TCPListen", _S, "Local TCP port or host:port to bind to the control service"),
            Field("TCPTLS", _S, "Name of TLS server config for the TCP listener"),
        ),
    ),
    EntityType(
        "command-service",
        "Run an interactive command via a Receptor service",
        (
            _SERVICE_BIND,
            Field("Command", _S, "Command to execute on a connection", required=True),
            Field("TLS", _S, "Name of TLS server config"),
        ),
        section=SERVICES,
    ),
    EntityType(
        "ip-router",
        "Run an IP router using a tun interface",
        (
            Field("NetworkName", _S, "Name of this network and service.", required=True),
            Field("Interface", _S, "Name of the local tun interface"),
            Field("LocalNet", _S, "Local /30 CIDR address", required=True),
            Field("Routes", _S, "Comma separated list of CIDR subnets to advertise"),
        ),
        section=SERVICES,
    ),
    EntityType(
        "tcp-server",
        "Listen for TCP and forward via Receptor",
        (
            Field("Port", _I, "Local TCP port to bind to", required=True),
            Field("BindAddr", _S, "Address to bind TCP listener to", "0.0.0.0"),
            _REMOTE_NODE,
            _REMOTE_SERVICE,
            Field("TLSServer", _S, "Name of TLS server config for the TCP listener"),
            Field("TLSClient", _S, "Name of TLS client config for the Receptor connection"),
        ),
        section=SERVICES,
    ),
    EntityType(
        "tcp-client",
        "Listen on a Receptor service and forward via TCP",
        (
            _SERVICE_BIND,
            Field("Address", _S, "Address for outbound TCP connection", required=True),
            Field("TLSServer", _S, "Name of TLS server config for the Receptor service"),
            Field("TLSClient", _S, "Name of TLS client config for the TCP connection"),
        ),
        section=SERVICES,
    ),
    EntityType(
        "udp-server",
        "Listen for UDP and forward via Receptor",
        (
            Field("Port", _I, "Local UDP port to bind to", required=True),
            Field("BindAddr", _S, "Address to bind UDP listener to", "0.0.0.0"),
            _REMOTE_NODE,
            _REMOTE_SERVICE,
        ),
        section=SERVICES,
    ),
    EntityType(
        "udp-client",
        "Listen on a Receptor service and forward via UDP",
        (
            _SERVICE_BIND,
            Field("Address", _S, "Address for outbound UDP connection", required=True),
        ),
        section=SERVICES,
    ),
    EntityType(
        "unix-socket-server",
        "Listen on a Unix socket and forward via Receptor",
        (
            Field("Filename", _S, "Socket filename, which will be overwritten", required=True),
            Field("Permissions", _I, "Socket file permissions", "0600"),
            _REMOTE_NODE,
            _REMOTE_SERVICE,
            Field("TLS", _S, "Name of TLS client config for the Receptor connection"),
        ),
        section=SERVICES,
    ),
    EntityType(
        "unix-socket-client",
        "Listen via Receptor and forward to a Unix socket",
        (
            _SERVICE_BIND,
            Field("Filename", _S, "Socket filename, which must already exist", required=True),
            Field("TLS", _S, "Name of TLS server config for the Receptor connection"),
        ),
        section=SERVICES,
    ),
    EntityType(
        "tcp-listener",
        "Run a backend listener on a TCP port",
        (
            _BIND,
            Field("Port", _I, "Local TCP port to listen on", required=True, bare=True),
            Field("TLS", _S, "Name of TLS server config"),
            _COST,
            _NODECOST,
            _ALLOWED,
        ),
        section=BACKENDS,
    ),
    EntityType(
        "tcp-peer",
        "Make an outbound backend connection to a TCP peer",
        (
            Field(
                "Address",
                _S,
                "Remote address (Host:Port) to connect to",
                required=True,
                bare=True,
            ),
            _REDIAL,
            Field("TLS", _S, "Name of TLS client config"),
            _COST,
            _ALLOWED,
        ),
        section=BACKENDS,
    ),
    EntityType(
        "UDP-listener",
        "Run a backend listener on a UDP port",
        (
            _BIND,
            Field("Port", _I, "Local UDP port to listen on", required=True, bare=True),
            _COST,
            _NODECOST,
            _ALLOWED,
        ),
        section=BACKENDS,
    ),
    EntityType(
        "UDP-peer",
        "Make an outbound backend connection to a UDP peer",
        (
            Field("Address", _S, "Host:Port to connect to", required=True, bare=True),
            _REDIAL,
            _COST,
            _ALLOWED,
        ),
        section=BACKENDS,
    ),
    EntityType(
        "ws-listener",
        "Run an http server that accepts websocket connections",
        (
            _BIND,
            Field("Port", _I, "Local TCP port to run http server on", required=True, bare=True),
            Field("Path", _S, "URI path to the websocket server", "/"),
            Field("TLS", _S, "Name of TLS server config"),
            _COST,
            _NODECOST,
            _ALLOWED,
        ),
        section=BACKENDS,
    ),
    EntityType(
        "ws-peer",
        "Connect outbound to a websocket peer",
        (
            Field("Address", _S, "URL to connect to", required=True, bare=True),
            _REDIAL,
            Field("ExtraHeader", _S, "Sends extra HTTP header on initial connection"),
            Field("TLS", _S, "Name of TLS client config"),
            _COST,
            _ALLOWED,
        ),
        section=BACKENDS,
    ),
    EntityType(
        "work-signing",
        "Private key to sign work submissions",
        (
            Field("PrivateKey", _S, "Private key to sign work submissions", bare=True),
            Field(
                "TokenExpiration",
                _S,
                "Expiration of the signed json web token, e.g. 3h or 3h30m",
            ),
        ),
        section=WORKERS,
        singleton=True,
    ),
    EntityType(
        "work-verification",
        "Public key to verify work submissions",
        (Field("PublicKey", _S, "Public key to verify signed work submissions", bare=True),),
        section=WORKERS,
        singleton=True,
    ),
    EntityType(
        "work-command",
        "Run a worker using an external command",
        (
            _WORKTYPE,
            Field("Command", _S, "Command to run to process units of work", required=True),
            Field("Params", _S, "Command-line parameters"),
            Field("AllowRuntimeParams", _B, "Allow users to add more parameters", "false"),
            _VERIFY_SIGNATURE,
        ),
        section=WORKERS,
    ),
    EntityType(
        "command-runner",
        "Wrapper around a process invocation",
        (
            Field("Command", _S, required=True),
            Field("Params", _S, required=True),
            Field("UnitDir", _S, required=True),
        ),
        hidden=True,
    ),
    EntityType(
        "work-kubernetes",
        "Run a worker using Kubernetes",
        (
            _WORKTYPE,
            Field("Namespace", _S, "Kubernetes namespace to create pods in"),
            Field("Image", _S, "Container image to use for the worker pod"),
            Field("Command", _S, "Command to run in the container (overrides entrypoint)"),
            Field("Params", _S, "Command-line parameters to pass to the entrypoint"),
            Field("AuthMethod", _S, "One of: kubeconfig, incluster", "incluster"),
            Field("KubeConfig", _S, "Kubeconfig filename (for authmethod=kubeconfig)"),
            Field("Pod", _S, "Pod definition filename, in json or yaml format"),
            Field("AllowRuntimeAuth", _B, "Allow passing API parameters at runtime", "false"),
            Field(
                "AllowRuntimeCommand", _B, "Allow specifying image & command at runtime", "false"
            ),
            Field("AllowRuntimeParams", _B, "Allow adding command parameters at runtime", "false"),
            Field("AllowRuntimePod", _B, "Allow passing Pod at runtime", "false"),
            Field(
                "DeletePodOnRestart", _B, "On restart, delete the pod if in pending state", "true"
            ),
            Field(
                "StreamMethod",
                _S,
                "Method for connecting to worker pods: logger or tcp",
                "logger",
            ),
            _VERIFY_SIGNATURE,
        ),
        section=WORKERS,
        documented=False,
    ),
    EntityType(
        "work-python",
        "Run a worker using a Python plugin\n[DEPRECATION WARNING] This option is not "
        "currently being used. This feature will be removed from receptor in a future release.",
        (
            _WORKTYPE,
            Field("Plugin", _S, "Python module name of the worker plugin", required=True),
            Field("Function", _S, "Receptor-exported function to call", required=True),
            Field("Config", FieldType.ANY_MAP, "Plugin-specific configuration"),
        ),
        section=WORKERS,
    ),
)

#: Entities the control ``reload`` command restarts; every other one needs a daemon restart.
RELOADABLE_ENTITIES: tuple[str, ...] = (
    "tcp-peer",
    "tcp-listener",
    "ws-peer",
    "ws-listener",
    "udp-peer",
    "udp-listener",
    "local-only",
)

_BY_NAME = {entity.name: entity for entity in ENTITIES}


def entity_by_name(name: str) -> EntityType | None:
    """The entity called ``name`` (any case, no dashes), or None."""
    return _BY_NAME.get(name.lower())
