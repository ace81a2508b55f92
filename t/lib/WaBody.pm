package WaBody;

# Builds webhook bodies the way Meta shapes them, for tests and benchmarks.

use strict;
use warnings;
use Exporter 'import';
use WaTest;

our @EXPORT_OK = qw(envelope text_message status_item messages_body);

sub envelope {
    my ($field, $value, %o) = @_;
    return {
        object => 'whatsapp_business_account',
        entry => [ {
            id => $o{waba} // '102290129340398',
            changes => [ { field => $field, value => $value } ],
        } ],
    };
}

sub text_message {
    my ($id, $text, %o) = @_;
    return { from => $o{from} // '16505551234', id => $id,
             timestamp => $o{ts} // '1749416383', type => 'text',
             text => { body => $text } };
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
    $value->{messages} = $o{messages} if $o{messages};
    $value->{statuses} = $o{statuses} if $o{statuses};
    return WaTest::meta_json(envelope('messages', $value));
}

1;
