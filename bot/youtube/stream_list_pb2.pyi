from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LiveChatMessageListRequest(_message.Message):
    __slots__ = ("live_chat_id", "hl", "profile_image_size", "max_results", "page_token", "part")
    LIVE_CHAT_ID_FIELD_NUMBER: _ClassVar[int]
    HL_FIELD_NUMBER: _ClassVar[int]
    PROFILE_IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_RESULTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PART_FIELD_NUMBER: _ClassVar[int]
    live_chat_id: str
    hl: str
    profile_image_size: int
    max_results: int
    page_token: str
    part: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, live_chat_id: _Optional[str] = ..., hl: _Optional[str] = ..., profile_image_size: _Optional[int] = ..., max_results: _Optional[int] = ..., page_token: _Optional[str] = ..., part: _Optional[_Iterable[str]] = ...) -> None: ...

class LiveChatMessageListResponse(_message.Message):
    __slots__ = ("offline_at", "next_page_token", "items")
    OFFLINE_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    offline_at: str
    next_page_token: str
    items: _containers.RepeatedCompositeFieldContainer[LiveChatMessage]
    def __init__(self, offline_at: _Optional[str] = ..., next_page_token: _Optional[str] = ..., items: _Optional[_Iterable[_Union[LiveChatMessage, _Mapping]]] = ...) -> None: ...

class LiveChatMessage(_message.Message):
    __slots__ = ("id", "snippet", "author_details")
    ID_FIELD_NUMBER: _ClassVar[int]
    SNIPPET_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_DETAILS_FIELD_NUMBER: _ClassVar[int]
    id: str
    snippet: LiveChatMessageSnippet
    author_details: LiveChatMessageAuthorDetails
    def __init__(self, id: _Optional[str] = ..., snippet: _Optional[_Union[LiveChatMessageSnippet, _Mapping]] = ..., author_details: _Optional[_Union[LiveChatMessageAuthorDetails, _Mapping]] = ...) -> None: ...

class LiveChatMessageAuthorDetails(_message.Message):
    __slots__ = ("channel_id", "display_name", "is_chat_owner", "is_chat_sponsor", "is_chat_moderator")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    IS_CHAT_OWNER_FIELD_NUMBER: _ClassVar[int]
    IS_CHAT_SPONSOR_FIELD_NUMBER: _ClassVar[int]
    IS_CHAT_MODERATOR_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    display_name: str
    is_chat_owner: bool
    is_chat_sponsor: bool
    is_chat_moderator: bool
    def __init__(self, channel_id: _Optional[str] = ..., display_name: _Optional[str] = ..., is_chat_owner: _Optional[bool] = ..., is_chat_sponsor: _Optional[bool] = ..., is_chat_moderator: _Optional[bool] = ...) -> None: ...

class LiveChatMessageSnippet(_message.Message):
    __slots__ = ("type", "live_chat_id", "author_channel_id", "published_at", "display_message", "text_message_details", "super_chat_details", "super_sticker_details", "new_sponsor_details", "member_milestone_chat_details", "membership_gifting_details", "gift_membership_received_details")
    class TypeWrapper(_message.Message):
        __slots__ = ()
        class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
            __slots__ = ()
            INVALID_TYPE: _ClassVar[LiveChatMessageSnippet.TypeWrapper.Type]
            TEXT_MESSAGE_EVENT: _ClassVar[LiveChatMessageSnippet.TypeWrapper.Type]
            CHAT_ENDED_EVENT: _ClassVar[LiveChatMessageSnippet.TypeWrapper.Type]
            NEW_SPONSOR_EVENT: _ClassVar[LiveChatMessageSnippet.TypeWrapper.Type]
            SUPER_CHAT_EVENT: _ClassVar[LiveChatMessageSnippet.TypeWrapper.Type]
            SUPER_STICKER_EVENT: _ClassVar[LiveChatMessageSnippet.TypeWrapper.Type]
            MEMBER_MILESTONE_CHAT_EVENT: _ClassVar[LiveChatMessageSnippet.TypeWrapper.Type]
            MEMBERSHIP_GIFTING_EVENT: _ClassVar[LiveChatMessageSnippet.TypeWrapper.Type]
            GIFT_MEMBERSHIP_RECEIVED_EVENT: _ClassVar[LiveChatMessageSnippet.TypeWrapper.Type]
        INVALID_TYPE: LiveChatMessageSnippet.TypeWrapper.Type
        TEXT_MESSAGE_EVENT: LiveChatMessageSnippet.TypeWrapper.Type
        CHAT_ENDED_EVENT: LiveChatMessageSnippet.TypeWrapper.Type
        NEW_SPONSOR_EVENT: LiveChatMessageSnippet.TypeWrapper.Type
        SUPER_CHAT_EVENT: LiveChatMessageSnippet.TypeWrapper.Type
        SUPER_STICKER_EVENT: LiveChatMessageSnippet.TypeWrapper.Type
        MEMBER_MILESTONE_CHAT_EVENT: LiveChatMessageSnippet.TypeWrapper.Type
        MEMBERSHIP_GIFTING_EVENT: LiveChatMessageSnippet.TypeWrapper.Type
        GIFT_MEMBERSHIP_RECEIVED_EVENT: LiveChatMessageSnippet.TypeWrapper.Type
        def __init__(self) -> None: ...
    TYPE_FIELD_NUMBER: _ClassVar[int]
    LIVE_CHAT_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TEXT_MESSAGE_DETAILS_FIELD_NUMBER: _ClassVar[int]
    SUPER_CHAT_DETAILS_FIELD_NUMBER: _ClassVar[int]
    SUPER_STICKER_DETAILS_FIELD_NUMBER: _ClassVar[int]
    NEW_SPONSOR_DETAILS_FIELD_NUMBER: _ClassVar[int]
    MEMBER_MILESTONE_CHAT_DETAILS_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIP_GIFTING_DETAILS_FIELD_NUMBER: _ClassVar[int]
    GIFT_MEMBERSHIP_RECEIVED_DETAILS_FIELD_NUMBER: _ClassVar[int]
    type: LiveChatMessageSnippet.TypeWrapper.Type
    live_chat_id: str
    author_channel_id: str
    published_at: str
    display_message: str
    text_message_details: LiveChatTextMessageDetails
    super_chat_details: LiveChatSuperChatDetails
    super_sticker_details: LiveChatSuperStickerDetails
    new_sponsor_details: LiveChatNewSponsorDetails
    member_milestone_chat_details: LiveChatMemberMilestoneChatDetails
    membership_gifting_details: LiveChatMembershipGiftingDetails
    gift_membership_received_details: LiveChatGiftMembershipReceivedDetails
    def __init__(self, type: _Optional[_Union[LiveChatMessageSnippet.TypeWrapper.Type, str]] = ..., live_chat_id: _Optional[str] = ..., author_channel_id: _Optional[str] = ..., published_at: _Optional[str] = ..., display_message: _Optional[str] = ..., text_message_details: _Optional[_Union[LiveChatTextMessageDetails, _Mapping]] = ..., super_chat_details: _Optional[_Union[LiveChatSuperChatDetails, _Mapping]] = ..., super_sticker_details: _Optional[_Union[LiveChatSuperStickerDetails, _Mapping]] = ..., new_sponsor_details: _Optional[_Union[LiveChatNewSponsorDetails, _Mapping]] = ..., member_milestone_chat_details: _Optional[_Union[LiveChatMemberMilestoneChatDetails, _Mapping]] = ..., membership_gifting_details: _Optional[_Union[LiveChatMembershipGiftingDetails, _Mapping]] = ..., gift_membership_received_details: _Optional[_Union[LiveChatGiftMembershipReceivedDetails, _Mapping]] = ...) -> None: ...

class LiveChatTextMessageDetails(_message.Message):
    __slots__ = ("message_text",)
    MESSAGE_TEXT_FIELD_NUMBER: _ClassVar[int]
    message_text: str
    def __init__(self, message_text: _Optional[str] = ...) -> None: ...

class LiveChatSuperChatDetails(_message.Message):
    __slots__ = ("amount_display_string", "user_comment")
    AMOUNT_DISPLAY_STRING_FIELD_NUMBER: _ClassVar[int]
    USER_COMMENT_FIELD_NUMBER: _ClassVar[int]
    amount_display_string: str
    user_comment: str
    def __init__(self, amount_display_string: _Optional[str] = ..., user_comment: _Optional[str] = ...) -> None: ...

class LiveChatSuperStickerDetails(_message.Message):
    __slots__ = ("amount_display_string", "super_sticker_metadata")
    AMOUNT_DISPLAY_STRING_FIELD_NUMBER: _ClassVar[int]
    SUPER_STICKER_METADATA_FIELD_NUMBER: _ClassVar[int]
    amount_display_string: str
    super_sticker_metadata: SuperStickerMetadata
    def __init__(self, amount_display_string: _Optional[str] = ..., super_sticker_metadata: _Optional[_Union[SuperStickerMetadata, _Mapping]] = ...) -> None: ...

class SuperStickerMetadata(_message.Message):
    __slots__ = ("alt_text",)
    ALT_TEXT_FIELD_NUMBER: _ClassVar[int]
    alt_text: str
    def __init__(self, alt_text: _Optional[str] = ...) -> None: ...

class LiveChatNewSponsorDetails(_message.Message):
    __slots__ = ("member_level_name",)
    MEMBER_LEVEL_NAME_FIELD_NUMBER: _ClassVar[int]
    member_level_name: str
    def __init__(self, member_level_name: _Optional[str] = ...) -> None: ...

class LiveChatMemberMilestoneChatDetails(_message.Message):
    __slots__ = ("member_month", "user_comment")
    MEMBER_MONTH_FIELD_NUMBER: _ClassVar[int]
    USER_COMMENT_FIELD_NUMBER: _ClassVar[int]
    member_month: int
    user_comment: str
    def __init__(self, member_month: _Optional[int] = ..., user_comment: _Optional[str] = ...) -> None: ...

class LiveChatMembershipGiftingDetails(_message.Message):
    __slots__ = ("gift_memberships_count",)
    GIFT_MEMBERSHIPS_COUNT_FIELD_NUMBER: _ClassVar[int]
    gift_memberships_count: int
    def __init__(self, gift_memberships_count: _Optional[int] = ...) -> None: ...

class LiveChatGiftMembershipReceivedDetails(_message.Message):
    __slots__ = ("gifter_channel_id", "associated_membership_gifting_message_id")
    GIFTER_CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    ASSOCIATED_MEMBERSHIP_GIFTING_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    gifter_channel_id: str
    associated_membership_gifting_message_id: str
    def __init__(self, gifter_channel_id: _Optional[str] = ..., associated_membership_gifting_message_id: _Optional[str] = ...) -> None: ...
