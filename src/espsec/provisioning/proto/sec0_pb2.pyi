from espsec.provisioning.proto import constants_pb2 as _constants_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Sec0MsgType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    S0_Session_Command: _ClassVar[Sec0MsgType]
    S0_Session_Response: _ClassVar[Sec0MsgType]
S0_Session_Command: Sec0MsgType
S0_Session_Response: Sec0MsgType

class S0SessionCmd(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class S0SessionResp(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: _constants_pb2.Status
    def __init__(self, status: _Optional[_Union[_constants_pb2.Status, str]] = ...) -> None: ...

class Sec0Payload(_message.Message):
    __slots__ = ("msg", "sc", "sr")
    MSG_FIELD_NUMBER: _ClassVar[int]
    SC_FIELD_NUMBER: _ClassVar[int]
    SR_FIELD_NUMBER: _ClassVar[int]
    msg: Sec0MsgType
    sc: S0SessionCmd
    sr: S0SessionResp
    def __init__(self, msg: _Optional[_Union[Sec0MsgType, str]] = ..., sc: _Optional[_Union[S0SessionCmd, _Mapping]] = ..., sr: _Optional[_Union[S0SessionResp, _Mapping]] = ...) -> None: ...
