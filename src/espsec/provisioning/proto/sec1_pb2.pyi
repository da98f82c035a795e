from espsec.provisioning.proto import constants_pb2 as _constants_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Sec1MsgType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    Session_Command0: _ClassVar[Sec1MsgType]
    Session_Response0: _ClassVar[Sec1MsgType]
    Session_Command1: _ClassVar[Sec1MsgType]
    Session_Response1: _ClassVar[Sec1MsgType]
Session_Command0: Sec1MsgType
Session_Response0: Sec1MsgType
Session_Command1: Sec1MsgType
Session_Response1: Sec1MsgType

class SessionCmd1(_message.Message):
    __slots__ = ("client_verify_data",)
    CLIENT_VERIFY_DATA_FIELD_NUMBER: _ClassVar[int]
    client_verify_data: bytes
    def __init__(self, client_verify_data: _Optional[bytes] = ...) -> None: ...

class SessionResp1(_message.Message):
    __slots__ = ("status", "device_verify_data")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_VERIFY_DATA_FIELD_NUMBER: _ClassVar[int]
    status: _constants_pb2.Status
    device_verify_data: bytes
    def __init__(self, status: _Optional[_Union[_constants_pb2.Status, str]] = ..., device_verify_data: _Optional[bytes] = ...) -> None: ...

class SessionCmd0(_message.Message):
    __slots__ = ("client_pubkey",)
    CLIENT_PUBKEY_FIELD_NUMBER: _ClassVar[int]
    client_pubkey: bytes
    def __init__(self, client_pubkey: _Optional[bytes] = ...) -> None: ...

class SessionResp0(_message.Message):
    __slots__ = ("status", "device_pubkey", "device_random")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_PUBKEY_FIELD_NUMBER: _ClassVar[int]
    DEVICE_RANDOM_FIELD_NUMBER: _ClassVar[int]
    status: _constants_pb2.Status
    device_pubkey: bytes
    device_random: bytes
    def __init__(self, status: _Optional[_Union[_constants_pb2.Status, str]] = ..., device_pubkey: _Optional[bytes] = ..., device_random: _Optional[bytes] = ...) -> None: ...

class Sec1Payload(_message.Message):
    __slots__ = ("msg", "sc0", "sr0", "sc1", "sr1")
    MSG_FIELD_NUMBER: _ClassVar[int]
    SC0_FIELD_NUMBER: _ClassVar[int]
    SR0_FIELD_NUMBER: _ClassVar[int]
    SC1_FIELD_NUMBER: _ClassVar[int]
    SR1_FIELD_NUMBER: _ClassVar[int]
    msg: Sec1MsgType
    sc0: SessionCmd0
    sr0: SessionResp0
    sc1: SessionCmd1
    sr1: SessionResp1
    def __init__(self, msg: _Optional[_Union[Sec1MsgType, str]] = ..., sc0: _Optional[_Union[SessionCmd0, _Mapping]] = ..., sr0: _Optional[_Union[SessionResp0, _Mapping]] = ..., sc1: _Optional[_Union[SessionCmd1, _Mapping]] = ..., sr1: _Optional[_Union[SessionResp1, _Mapping]] = ...) -> None: ...
