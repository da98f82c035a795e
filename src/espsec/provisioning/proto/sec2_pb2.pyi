from espsec.provisioning.proto import constants_pb2 as _constants_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Sec2MsgType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    S2Session_Command0: _ClassVar[Sec2MsgType]
    S2Session_Response0: _ClassVar[Sec2MsgType]
    S2Session_Command1: _ClassVar[Sec2MsgType]
    S2Session_Response1: _ClassVar[Sec2MsgType]
S2Session_Command0: Sec2MsgType
S2Session_Response0: Sec2MsgType
S2Session_Command1: Sec2MsgType
S2Session_Response1: Sec2MsgType

class S2SessionCmd0(_message.Message):
    __slots__ = ("client_username", "client_pubkey")
    CLIENT_USERNAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_PUBKEY_FIELD_NUMBER: _ClassVar[int]
    client_username: bytes
    client_pubkey: bytes
    def __init__(self, client_username: _Optional[bytes] = ..., client_pubkey: _Optional[bytes] = ...) -> None: ...

class S2SessionResp0(_message.Message):
    __slots__ = ("status", "device_pubkey", "device_salt")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_PUBKEY_FIELD_NUMBER: _ClassVar[int]
    DEVICE_SALT_FIELD_NUMBER: _ClassVar[int]
    status: _constants_pb2.Status
    device_pubkey: bytes
    device_salt: bytes
    def __init__(self, status: _Optional[_Union[_constants_pb2.Status, str]] = ..., device_pubkey: _Optional[bytes] = ..., device_salt: _Optional[bytes] = ...) -> None: ...

class S2SessionCmd1(_message.Message):
    __slots__ = ("client_proof",)
    CLIENT_PROOF_FIELD_NUMBER: _ClassVar[int]
    client_proof: bytes
    def __init__(self, client_proof: _Optional[bytes] = ...) -> None: ...

class S2SessionResp1(_message.Message):
    __slots__ = ("status", "device_proof", "device_nonce")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_PROOF_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NONCE_FIELD_NUMBER: _ClassVar[int]
    status: _constants_pb2.Status
    device_proof: bytes
    device_nonce: bytes
    def __init__(self, status: _Optional[_Union[_constants_pb2.Status, str]] = ..., device_proof: _Optional[bytes] = ..., device_nonce: _Optional[bytes] = ...) -> None: ...

class Sec2Payload(_message.Message):
    __slots__ = ("msg", "sc0", "sr0", "sc1", "sr1")
    MSG_FIELD_NUMBER: _ClassVar[int]
    SC0_FIELD_NUMBER: _ClassVar[int]
    SR0_FIELD_NUMBER: _ClassVar[int]
    SC1_FIELD_NUMBER: _ClassVar[int]
    SR1_FIELD_NUMBER: _ClassVar[int]
    msg: Sec2MsgType
    sc0: S2SessionCmd0
    sr0: S2SessionResp0
    sc1: S2SessionCmd1
    sr1: S2SessionResp1
    def __init__(self, msg: _Optional[_Union[Sec2MsgType, str]] = ..., sc0: _Optional[_Union[S2SessionCmd0, _Mapping]] = ..., sr0: _Optional[_Union[S2SessionResp0, _Mapping]] = ..., sc1: _Optional[_Union[S2SessionCmd1, _Mapping]] = ..., sr1: _Optional[_Union[S2SessionResp1, _Mapping]] = ...) -> None: ...
