# Values from the payload are carried with their lengths, never cut at a
# NUL: two message ids that differ only after a \u0000 are two events, not
# one event and a duplicate, through the module, Redis and the worker.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use WaTest;
use WaBody qw(messages_body text_message status_item);

my $t = WaTest->new;
$t->start_redis;
$t->start_nginx;

my $body = messages_body(
    messages => [ text_message("wamid.NUL\0a", "hello\0world"),
                  text_message("wamid.NUL\0b", 'second') ],
    statuses => [ status_item("wamid.OUT\0x", 'read'),
                  status_item("wamid.OUT\0y", 'read') ]);
like $body, qr/\\u0000/, 'the NULs travel as \u0000, as Meta escapes them';

is $t->post($body)->{status}, 200, 'a body with NULs in ids and texts: 200';

my @m = $t->stream_events('wa:messages');
is_deeply [ map { $_->{event_id} } @m ], [ "wamid.NUL\0a", "wamid.NUL\0b" ],
    'two messages, their ids whole';
is_deeply [ map { $_->{msg_id} } @m ], [ "wamid.NUL\0a", "wamid.NUL\0b" ],
    'msg_id whole';
is $m[0]{text}, "hello\0world", 'a text with a NUL kept whole';

my @s = $t->stream_events('wa:statuses');
is_deeply [ map { $_->{event_id} } @s ],
    [ "wamid.OUT\0x:read", "wamid.OUT\0y:read" ], 'two statuses, ids whole';

my $keys = $t->redis('KEYS', 'wa:dedupe:*');
is scalar @$keys, 4, 'four dedupe keys';

is $t->post($body)->{status}, 200, 'the redelivery: 200';
is $t->xlen('wa:messages'), 2, 'nothing appended twice';
is $t->xlen('wa:statuses'), 2, 'nor statuses';

# the worker sees two events too
$t->start_worker;
ok $t->wait_for(sub { $t->drained }, 15), 'the worker drained the streams';
ok $t->wait_for(sub { ($t->hash('wa:worker:w1')->{applied} // 0) >= 4 }),
    'the worker applied all four';
is $t->hash('wa:worker:w1')->{applied}, 4, 'no more';
is $t->hash('wa:worker:w1')->{duplicates} // 0, 0, 'none as a duplicate';

done_testing;
