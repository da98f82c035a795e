from espsec.provisioning.proto import sec0_pb2 as _sec0_pb2
from espsec.provisioning.proto import sec1_pb2 as _sec1_pb2
from espsec.provisioning.proto import sec2_pb2 as _sec2_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SecSchemeVersion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SecScheme0: _ClassVar[SecSchemeVersion]
    SecScheme1: _ClassVar[SecSchemeVersion]
    SecScheme2: _ClassVar[SecSchemeVersion]
SecScheme0: SecSchemeVersion
SecScheme1: SecSchemeVersion
SecScheme2: SecSchemeVersion

class SessionData(_message.Message):
    __slots__ = ("sec_ver", "sec0", "sec1", "sec2")
    SEC_VER_FIELD_NUMBER: _ClassVar[int]
    SEC0_FIELD_NUMBER: _ClassVar[int]
    SEC1_FIELD_NUMBER: _ClassVar[int]
    SEC2_FIELD_NUMBER: _ClassVar[int]
    sec_ver: SecSchemeVersion
    sec0: _sec0_pb2.Sec0Payload
    sec1: _sec1_pb2.Sec1Payload
    sec2: _sec2_pb2.Sec2Payload
    def __init__(self, sec_ver: _Optional[_Union[SecSchemeVersion, str]] = ..., sec0: _Optional[_Union[_sec0_pb2.Sec0Payload, _Mapping]] = ..., sec1: _Optional[_Union[_sec1_pb2.Sec1Payload, _Mapping]] = ..., sec2: _Optional[_Union[_sec2_pb2.Sec2Payload, _Mapping]] = ...) -> None: ...
