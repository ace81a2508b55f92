package WaBody;

# Builds webhook bodies the way Meta shapes them, for tests and benchmarks.

use strict;
use warnings;
use Exporter 'import';
use WaTest;

our @EXPORT_OK = qw(envelope text_message status_item messages_body
                    change_body);

sub envelope {
    my ($field, $value, %o) = @_;
    return {
        object => 'whatsapp_business_account',
        entry => [ {
            id => $o{waba} // '102290129340398',
            (defined $o{time} ? (time => $o{time}) : ()),
            changes => [ { field => $field, value => $value } ],
        } ],
    };
}

sub text_message {
    my ($id, $text, %o) = @_;
    my $type = $o{type} // 'text';
    my $m = { from => $o{from} // '16505551234', id => $id,
              timestamp => $o{ts} // '1749416383', type => $type };
    $m->{text} = { body => $text } if $type eq 'text';
    $m->{reaction} = { message_id => 'wamid.any', emoji => "\x{1F600}" }
        if $type eq 'reaction';
    $m->{referral} = $o{referral} if $o{referral};
    return $m;
}

sub status_item {
    my ($id, $status, %o) = @_;
    return { id => $id, status => $status,
             timestamp => $o{ts} // '1749416400',
             recipient_id => $o{to} // '16505551234' };
}

# a "messages" change carrying the given messages and statuses, as Meta
# serialises it
sub messages_body {
    my (%o) = @_;
    my $value = {
        messaging_product => 'whatsapp',
        metadata => { display_phone_number => '15550783881',
                      phone_number_id => '106540352242922' },
        contacts => [ { profile => { name => 'Test' },
                        wa_id => '16505551234' } ],
    };
    $value->{metadata}{phone_number_id} = $o{phone_number_id}
        if $o{phone_number_id};
    $value->{messages} = $o{messages} if $o{messages};
    $value->{statuses} = $o{statuses} if $o{statuses};
    $value->{contacts}[0]{wa_id} = $o{from} if $o{from};
    $value->{contacts}[0]{profile}{name} = $o{name} if $o{name};
    return WaTest::meta_json(envelope('messages', $value));
}

# any other field: one change with entry.time
sub change_body {
    my ($field, $value, $time, %o) = @_;
    return WaTest::meta_json(envelope($field, $value, time => $time, %o));
}

1;
